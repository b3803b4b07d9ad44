--[[ Remove members of a sorted set (ZREM); the sorted set goes with its last member.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5..] the members
  Returns {1, version, expire_ms, length, removed}. ]]
-- @include _coll
local refused = refuse_kind('sorted_set') or refuse_version()
if refused then
  return refused
end
if not KIND or #ARGV < 5 then
  return {1, VER, EXP, length(), 0}
end
local removed = redis.call('ZREM', DATA, unpack(ARGV, 5))
commit('sorted_set', length(), removed > 0)
return {1, VER, EXP, length(), removed}
