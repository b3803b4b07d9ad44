--[[ A snapshot of the election's lock (the lock's describe, _describe.lua); writes nothing.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV: as the lock's describe (see _describe.lua).
  Returns the lock describe's reply. ]]
-- @include _lib
local function lock_describe()
-- @include _describe
end

return lock_describe()
