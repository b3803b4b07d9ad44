--[[ Take values from one end of a list (LPOP or RPOP with a count), first come first served among the
  waiting Pops: a caller may take values only while fewer waiters than the list holds values are
  ahead of it, and then at most as many as are not reserved by them (see _list_queue.lua). A waiting
  caller that may take nothing joins the queue (or stays in it, renewing its heartbeat) in the same
  step, so a push can never slip between a failed try and its registration; one that takes leaves it.
  KEYS[1..2], ARGV[1..4], reply: see _coll.lua; KEYS[3..5] the waiter queue (see _list_queue.lua).
  ARGV[5] end: 'f' front | 'b' back   ARGV[6] count (>= 1)   ARGV[7] waiter id ('' when not waiting)
  ARGV[8] waiter heartbeat ttl ms   ARGV[9] server id (where the waiter's wake-ups go)
  ARGV[10] the most bytes of values to take (one reply's worth; each value counted with 8 bytes of
  framing): fewer than count are taken rather than more than one reply can carry, and always one.
  Returns {1, version, expire_ms, length, wake, values}: values as taken, from the end inwards (none
  when it may take nothing); wake lists the waiters that may take a value when dead ones left. A Pop
  that takes nothing changes nothing of the list (not its TTL either). ]]
-- @include _coll
-- @include _list_queue
local refused = refuse_kind('list') or refuse_version()
if refused then
  return refused
end
local WID = ARGV[7]
local purged = purge_waiters()
local len = length()
local position = redis.call('ZCARD', Q)
local queued = false
if WID ~= '' then
  local rank = redis.call('ZRANK', Q, WID)
  if rank then
    position, queued = rank, true
  end
end
local take = math.min(tonumber(ARGV[6]), len - position)
local values = {}
if take > 0 then
  -- Peeked one by one, so no value leaves the list that the reply could not carry.
  local budget, index, bytes = tonumber(ARGV[10]), 0, 0
  if ARGV[5] == 'b' then
    index = -1
  end
  for _ = 1, take do
    local size = #redis.call('LINDEX', DATA, index) + 8
    if #values > 0 and bytes + size > budget then
      break
    end
    bytes = bytes + size
    if ARGV[5] == 'f' then
      values[#values + 1] = redis.call('LPOP', DATA)
    else
      values[#values + 1] = redis.call('RPOP', DATA)
    end
  end
  take = #values
  len = len - take
  commit('list', len, true)
  if queued then
    leave_queue(WID)
  end
elseif WID ~= '' then
  if not queued then
    local tail = redis.call('ZRANGE', Q, -1, -1, 'WITHSCORES')
    local ticket = 1
    if #tail > 0 then
      ticket = tonumber(tail[2]) + 1
    end
    redis.call('ZADD', Q, ticket, WID)
  end
  redis.call('HSET', QD, WID, ARGV[9])
  redis.call('ZADD', QX, NOW + tonumber(ARGV[8]), WID)
  expire_queue()
end
local wake = {}
if purged > 0 then
  expire_queue()
  wake = eligible_waiters()
end
return {1, VER, EXP, len, wake, values}
