--[[ Write fields of a map (HSET), all or none.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5..] field, value, field, value, ...
  Returns {1, version, expire_ms, length, added}: added counts the fields that were new. ]]
-- @include _coll
local refused = refuse_kind('map') or refuse_version()
if refused then
  return refused
end
local before = length()
local added, seen = 0, {}
for i = 5, #ARGV, 2 do
  local field = ARGV[i]
  if not seen[field] then
    seen[field] = true
    if redis.call('HEXISTS', DATA, field) == 0 then
      added = added + 1
    end
  end
end
refused = refuse_size(before + added)
if refused then
  return refused
end
redis.call('HSET', DATA, unpack(ARGV, 5))
commit('map', before + added, true)
return {1, VER, EXP, before + added, added}
