--[[ Test members of a set (SMISMEMBER).
  KEYS, reply: see _coll.lua.   ARGV[1..] the members
  Returns {1, version, expire_ms, length, 1 or 0 per member}. ]]
-- @include _coll
local refused = refuse_kind('set')
if refused then
  return refused
end
local reply = {1, VER, EXP, length()}
if #ARGV == 0 then
  return reply
end
local found = redis.call('SMISMEMBER', DATA, unpack(ARGV))
for i = 1, #ARGV do
  reply[4 + i] = found[i]
end
return reply
