--[[ One server renews the liveness of its waiting Pops on one list (batched per list), and reports
  every waiter that may take a value now, woken before or not: this repairs lost wake-up messages.
  KEYS: the five list keys (see _coll.lua, _list_queue.lua).
  ARGV[1] waiter heartbeat ttl ms   ARGV[2..] waiter ids of this server
  Returns {missing, wake}: missing lists the given waiter ids no longer queued (they must queue again);
  wake is a flat list {server, waiter id, ...}. ]]
-- @include _coll
-- @include _list_queue
local WAITER_TTL = tonumber(ARGV[1])
purge_waiters()
local missing = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', Q, ARGV[i]) then
    redis.call('ZADD', QX, NOW + WAITER_TTL, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
expire_queue()
return {missing, eligible_waiters()}
