--[[ Read the scores of members of a sorted set (ZMSCORE).
  KEYS, reply: see _coll.lua.   ARGV[1..] the members
  Returns {1, version, expire_ms, length, score as text or nil per member}. ]]
-- @include _coll
local refused = refuse_kind('sorted_set')
if refused then
  return refused
end
local reply = {1, VER, EXP, length()}
if #ARGV == 0 then
  return reply
end
local scores = redis.call('ZMSCORE', DATA, unpack(ARGV))
for i = 1, #ARGV do
  reply[4 + i] = scores[i]
end
return reply
