--[[ End a grant, owner-checked by its secret lock token; idempotent.
  KEYS: the seven lock keys (see _lib.lua).   ARGV[1] history ms   ARGV[2] lock token
  Returns {outcome, wake}: outcome 'RELEASED' (now, or already earlier) | 'EXPIRED' | 'NOT_HELD' |
  'HELD_BY_OTHER'; wake is the flat {server, waiter id, ...} list of waiters that may now be granted. ]]
-- @include _lib
local TOKEN = ARGV[2]
local changed = purge()
local outcome
if end_grant(TOKEN, 'R') then
  outcome = 'RELEASED'
  changed = changed + 1
else
  local rec = redis.call('HGET', D, TOKEN)
  if rec and string.sub(rec, 1, 1) == 'R' then
    outcome = 'RELEASED'
  elseif rec and string.sub(rec, 1, 1) == 'E' then
    outcome = 'EXPIRED'
  else
    outcome = unknown_token()
  end
end
return {outcome, settle(changed)}
