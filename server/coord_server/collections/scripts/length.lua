--[[ A collection's state: version, expiry and number of elements.
  KEYS, reply: see _coll.lua.   ARGV[1] the kind the caller expects
  Returns {1, version, expire_ms, length} (all 0 when there is no collection). ]]
-- @include _coll
local refused = refuse_kind(ARGV[1])
if refused then
  return refused
end
return {1, VER, EXP, length()}
