--[[ A candidate tries to be elected: the lock's acquire (_acquire.lua, the lock service's own
  script) on the election's lock, then, in the same step, the end of a leadership whose grant ran out
  and, on a grant, the new leader's record and its "elected" change.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV[1..10] as the lock's acquire (ARGV[2] the lock token)   ARGV[11] the candidate's value
  Returns the lock acquire's reply; a granted one gets a sixth element, the revision of the election:
  {1, term, expiry_ms, now_ms, wake, revision}. ]]
-- @include _lib
-- @include _election
local function lock_acquire()
-- @include _acquire
end

local reply = lock_acquire()
reconcile()
if reply[1] == 1 then
  reply[6] = elect(ARGV[2], reply[2], ARGV[11])
end
touch()
return reply
