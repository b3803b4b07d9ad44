--[[ One server renews the liveness of its waiting GetOrLease calls on one key (batched per key), and
  reports the waiters to wake, woken before or not: this repairs lost wake-ups, and hands the lease on
  after an expiry, which publishes nothing.
  KEYS[1] entry   KEYS[2] tombstone (not read)   KEYS[3..6] lease and waiter queue (_lease.lua)
  ARGV[1] waiter heartbeat ttl ms   ARGV[2..] waiter ids of this server
  Returns {missing, wake}: missing lists the given waiter ids no longer queued (they must queue again);
  wake is a flat list {server, waiter id, ...}: every waiter when a live entry is there (a Set's
  wake-up may have been lost; one past its expiry, kept for its stale grace, is none), else the first
  one when no lease is held. KEYS[1]'s layout: _entry.lua. ]]
-- @include _lease
-- @include _entry
local WAITER_TTL = tonumber(ARGV[1])
local now = lease_clock()
lease_purge(now)
local missing = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', LQ, ARGV[i]) then
    redis.call('ZADD', LQX, now + WAITER_TTL, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
lease_expire_queue()
local wake = {}
local e = entry_read(KEYS[1], false)
if e and not (e.old and not e.value) and not entry_stale(e, now) then
  wake = lease_waiters(0, -1)
elseif redis.call('EXISTS', LEASE) == 0 then
  wake = lease_waiters(0, 0)
end
return {missing, wake}
