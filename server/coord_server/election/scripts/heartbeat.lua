--[[ One server renews its queued candidates and learns who may be elected now: the
  lock's heartbeat (_heartbeat.lua, the lock service's own script), then, in the same step,
  the end of a leadership whose grant is gone.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV: as the lock's heartbeat (see _heartbeat.lua).
  Returns the lock heartbeat's reply. ]]
-- @include _lib
-- @include _election
local function lock_heartbeat()
-- @include _heartbeat
end

local reply = lock_heartbeat()
reconcile()
touch()
return reply
