--[[ Remove occurrences of a value from a list (LREM); the list goes with its last value.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5] count (0 all, n > 0 the first n from the front,
  n < 0 the first |n| from the back)   ARGV[6] the value
  Returns {1, version, expire_ms, length, removed}. ]]
-- @include _coll
local refused = refuse_kind('list') or refuse_version()
if refused then
  return refused
end
if not KIND then
  return {1, 0, 0, 0, 0}
end
local removed = redis.call('LREM', DATA, ARGV[5], ARGV[6])
commit('list', length(), removed > 0)
return {1, VER, EXP, length(), removed}
