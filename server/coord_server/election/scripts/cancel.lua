--[[ A candidate leaves the queue (and a grant that raced with its give-up is released):
  the lock's cancel (_cancel.lua, the lock service's own script), then, in the same step,
  the end of a leadership whose grant is gone.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV: as the lock's cancel (see _cancel.lua).
  Returns the lock cancel's reply. ]]
-- @include _lib
-- @include _election
local function lock_cancel()
-- @include _cancel
end

local reply = lock_cancel()
reconcile()
touch()
return reply
