--[[ Read the members ranked around one member of a sorted set (its rank, then ZRANGE by index).
  KEYS, reply: see _coll.lua.   ARGV[1] order: 'asc' | 'desc'   ARGV[2] the member
  ARGV[3] how many members before it   ARGV[4] how many after it
  Returns {1, version, expire_ms, length, first rank, member, score as text, ...} in rank order, the
  window clipped at both ends of the sorted set; first rank is -1 (and nothing follows) when the
  sorted set does not hold the member. ]]
-- @include _coll
local refused = refuse_kind('sorted_set')
if refused then
  return refused
end
local len = length()
local rank
if ARGV[1] == 'desc' then
  rank = redis.call('ZREVRANK', DATA, ARGV[2])
else
  rank = redis.call('ZRANK', DATA, ARGV[2])
end
if not rank then
  return {1, VER, EXP, len, -1}
end
local start = math.max(rank - tonumber(ARGV[3]), 0)
local stop = math.min(rank + tonumber(ARGV[4]), len - 1)
local reply = {1, VER, EXP, len, start}
local found
if ARGV[1] == 'desc' then
  found = redis.call('ZRANGE', DATA, num(start), num(stop), 'REV', 'WITHSCORES')
else
  found = redis.call('ZRANGE', DATA, num(start), num(stop), 'WITHSCORES')
end
for i = 1, #found do
  reply[5 + i] = found[i]
end
return reply
