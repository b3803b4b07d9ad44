--[[ Keep only the values in a range of positions of a list (LTRIM); the list goes with its last value.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5] start   ARGV[6] stop (included; negative counts
  from the back)
  Returns {1, version, expire_ms, length, removed}. ]]
-- @include _coll
local refused = refuse_kind('list') or refuse_version()
if refused then
  return refused
end
if not KIND then
  return {1, 0, 0, 0, 0}
end
local before = length()
redis.call('LTRIM', DATA, ARGV[5], ARGV[6])
local len = redis.call('LLEN', DATA)
commit('list', len, len < before)
return {1, VER, EXP, len, before - len}
