--[[ Remove and return random members of a set (SPOP with a count); the set goes with its last member.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5] the most members to take (> 0)
  Returns {1, version, expire_ms, length, member, ...}. ]]
-- @include _coll
local refused = refuse_kind('set') or refuse_version()
if refused then
  return refused
end
local count = tonumber(ARGV[5])
if not KIND or not count then
  return {1, VER, EXP, length()}
end
local taken = redis.call('SPOP', DATA, count)
commit('set', length(), #taken > 0)
local reply = {1, VER, EXP, length()}
for i = 1, #taken do
  reply[4 + i] = taken[i]
end
return reply
