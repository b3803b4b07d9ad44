--[[ End the leadership of a term, proven by its lock token: the lock's release (_release.lua, the
  lock service's own script) of that grant, then its "ended" change, in the same step. Idempotent as
  the release is: while the grant is remembered, resigning again answers RELEASED again.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV[1] history ms   ARGV[2] lock token   ARGV[3] term
  Returns {outcome, wake}: outcome as the lock release's, or 'NOT_LEADER' when the token's grant is
  not of that term (nothing changes); wake as the release's. ]]
-- @include _lib
-- @include _election
local function lock_release()
-- @include _release
end

local TOKEN, TERM = ARGV[2], ARGV[3]
if not TERM then
  return redis.error_reply('ERR resign needs a lock token and a term')
end
local grant = redis.call('HGET', D, TOKEN)
if not grant or string.match(grant, '^%a|%a|%d+|(%d+)|') ~= TERM then
  return {'NOT_LEADER', {}}
end
local reply = lock_release()
reconcile()
touch()
return reply
