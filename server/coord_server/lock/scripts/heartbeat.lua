--[[ One server renews the liveness of its waiters on one lock (batched per lock), and reports every
  waiter that may be granted now, woken before or not: this repairs lost wake-up messages and hands a
  lock on after an expiry, which publishes nothing.
  KEYS: the seven lock keys (see _lib.lua).
  ARGV[1] history ms   ARGV[2] waiter heartbeat ttl ms   ARGV[3..] waiter ids of this server
  Returns {missing, wake}: missing lists the given waiter ids no longer queued (they must re-queue). ]]
-- @include _lib
local WAITER_TTL = tonumber(ARGV[2])
local changed = purge()
local missing = {}
for i = 3, #ARGV do
  if redis.call('ZSCORE', Q, ARGV[i]) then
    redis.call('ZADD', QX, NOW + WAITER_TTL, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
expire_queue()
if changed > 0 then
  expire_grants()
end
return {missing, wake_list(true)}
