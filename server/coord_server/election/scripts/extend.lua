--[[ A leader's lease is renewed: the lock's extend (_extend.lua, the lock service's own script), then, in the same step,
  the end of a leadership whose grant is gone.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV: as the lock's extend (see _extend.lua).
  Returns the lock extend's reply. ]]
-- @include _lib
-- @include _election
local function lock_extend()
-- @include _extend
end

local reply = lock_extend()
reconcile()
touch()
return reply
