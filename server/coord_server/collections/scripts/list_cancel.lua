--[[ A waiting Pop gives up (its wait ended, its caller went away, or it failed): it leaves the queue
  at once, and the value it had reserved passes to the waiter it leaves eligible.
  KEYS: the five list keys (see _coll.lua, _list_queue.lua).   ARGV[1] waiter id
  Returns wake: a flat list {server, waiter id, ...} of the waiters that may now take a value. ]]
-- @include _coll
-- @include _list_queue
local purged = purge_waiters()
local rank = redis.call('ZRANK', Q, ARGV[1])
leave_queue(ARGV[1])
if purged > 0 then
  return eligible_waiters()
end
local len = list_length()
if rank and rank < len then
  -- It held a reservation: the waiter now at position len - 1 (if any) moved up into one.
  return waiters_between(len - 1, len)
end
return {}
