--[[ Read a window of ranks of a sorted set (ZRANGE by index), with scores.
  KEYS, reply: see _coll.lua.   ARGV[1] order: 'asc' | 'desc'   ARGV[2] start rank   ARGV[3] stop rank
  (included; negative ranks count from the end, -1 the last)   ARGV[4] the most members a window may
  hold
  Returns {1, version, expire_ms, length, first rank, member, score as text, ...} in rank order, or
  {-3, n} when the window, resolved against the length, holds n members, more than ARGV[4]. ]]
-- @include _coll
local refused = refuse_kind('sorted_set')
if refused then
  return refused
end
local len = length()
local start, stop = tonumber(ARGV[2]), tonumber(ARGV[3])
if start < 0 then
  start = start + len
end
if stop < 0 then
  stop = stop + len
end
start, stop = math.max(start, 0), math.min(stop, len - 1)
local reply = {1, VER, EXP, len, start}
if stop < start then
  return reply
end
if stop - start + 1 > tonumber(ARGV[4]) then
  return {-3, num(stop - start + 1)}
end
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
