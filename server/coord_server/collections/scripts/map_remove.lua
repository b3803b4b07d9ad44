--[[ Remove fields of a map (HDEL); the map goes with its last field.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5..] the fields
  Returns {1, version, expire_ms, length, removed}. ]]
-- @include _coll
local refused = refuse_kind('map') or refuse_version()
if refused then
  return refused
end
if not KIND then
  return {1, 0, 0, 0, 0}
end
local removed = redis.call('HDEL', DATA, unpack(ARGV, 5))
commit('map', length(), removed > 0)
return {1, VER, EXP, length(), removed}
