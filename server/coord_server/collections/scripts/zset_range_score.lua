--[[ Read the members of a sorted set whose scores lie between two bounds (ZRANGE BYSCORE), with
  scores, an offset and a count.
  KEYS, reply: see _coll.lua.   ARGV[1] order: 'asc' | 'desc'   ARGV[2] min bound   ARGV[3] max bound
  (Redis's syntax: '-inf', '+inf', '1.5', '(1.5' exclusive)   ARGV[4] offset   ARGV[5] most members
  Returns {1, version, expire_ms, length, member, score as text, ...} in the order asked for. ]]
-- @include _coll
local refused = refuse_kind('sorted_set')
if refused then
  return refused
end
local reply = {1, VER, EXP, length()}
if not KIND then
  return reply
end
local found
if ARGV[1] == 'desc' then
  found = redis.call('ZRANGE', DATA, ARGV[3], ARGV[2], 'BYSCORE', 'REV', 'LIMIT', ARGV[4], ARGV[5], 'WITHSCORES')
else
  found = redis.call('ZRANGE', DATA, ARGV[2], ARGV[3], 'BYSCORE', 'LIMIT', ARGV[4], ARGV[5], 'WITHSCORES')
end
for i = 1, #found do
  reply[4 + i] = found[i]
end
return reply
