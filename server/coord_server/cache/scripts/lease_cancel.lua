--[[ A waiting GetOrLease gives up (its wait ended, its caller went away, or it failed): it leaves the
  queue at once. A lease that went to its token in an attempt whose answer never reached the caller
  ends too, so the next waiter need not wait for it to expire.
  KEYS[1] entry   KEYS[2] tombstone (not read)   KEYS[3..6] lease and waiter queue (_lease.lua)
  ARGV[1] waiter id   ARGV[2] the call's lease token
  Returns wake: a flat list {server, waiter id} of the first waiter when it changed or the lease was
  ended (it may take the lease, or learn when the current one ends), else {}. ]]
-- @include _lease
local WID, TOKEN = ARGV[1], ARGV[2]
if not WID or not TOKEN then
  return redis.error_reply('ERR lease_cancel: needs a waiter id and a lease token')
end
local purged = lease_purge(lease_clock())
local rank = redis.call('ZRANK', LQ, WID)
lease_leave(WID)
local released = TOKEN ~= '' and redis.call('GET', LEASE) == TOKEN
if released then
  redis.call('DEL', LEASE)
end
if released or rank == 0 or purged > 0 then
  return lease_waiters(0, 0)
end
return {}
