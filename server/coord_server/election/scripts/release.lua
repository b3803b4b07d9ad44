--[[ A grant ends by its lock token (a resign, or the end of a Campaign stream): the
  lock's release (_release.lua, the lock service's own script), then, in the same step,
  the end of a leadership whose grant is gone.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV: as the lock's release (see _release.lua).
  Returns the lock release's reply. ]]
-- @include _lib
-- @include _election
local function lock_release()
-- @include _release
end

local reply = lock_release()
reconcile()
touch()
return reply
