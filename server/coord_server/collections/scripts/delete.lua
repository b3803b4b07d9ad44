--[[ Delete a whole collection, optionally only at an expected version.
  KEYS, reply: see _coll.lua.   ARGV[1] the kind the caller expects   ARGV[2] if_version ('' = none)
  Returns {1, 0, 0, 0} when deleted; {0, version, expire_ms, length} when there was nothing to delete
  or the version did not match. A list's waiting Pops stay queued (their keys are not these). ]]
-- @include _coll
local refused = refuse_kind(ARGV[1])
if refused then
  return refused
end
if not KIND or (ARGV[2] ~= '' and ARGV[2] ~= VER_TEXT) then
  return {0, VER, EXP, length()}
end
redis.call('DEL', DATA, META)
return {1, 0, 0, 0}
