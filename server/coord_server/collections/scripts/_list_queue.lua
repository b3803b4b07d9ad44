--[[ _list_queue: a list's queue of waiting Pops (for list scripts that wake or queue waiters).
  Included after _coll, by scripts that take five keys (CollectionKeys.all):
  KEYS[3] Q   ZSET  the waiting Pops, first come first served: waiter id -> ticket
  KEYS[4] QX  ZSET  waiter id -> heartbeat deadline (Unix ms); a waiter past it is dead
  KEYS[5] QD  HASH  waiter id -> id of the server it waits on (where its wake-up goes)
  The queue keys are not the collection's: a Delete leaves them. They expire at their last waiter's
  heartbeat deadline, and go with their last waiter.
  Fairness: a caller at 0-based queue position p (one not queued counts as p = queue length) may take
  values only while p < LLEN: each waiter ahead of it reserves one value. ]]
-- @include _coll
local Q, QX, QD = KEYS[3], KEYS[4], KEYS[5]

-- The length fairness is measured against: that of the list, 0 when the name holds another kind.
local function list_length()
  if KIND ~= 'list' then
    return 0
  end
  return redis.call('LLEN', DATA)
end

-- Waiters whose heartbeat deadline passed leave the queue. Returns how many left.
local function purge_waiters()
  local dead = redis.call('ZRANGEBYSCORE', QX, '-inf', NOW)
  for i = 1, #dead do
    redis.call('ZREM', Q, dead[i])
    redis.call('HDEL', QD, dead[i])
  end
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', QX, '-inf', NOW)
  end
  return #dead
end

-- The queue keys expire at the last waiter's heartbeat deadline (they are gone with no waiter).
local function expire_queue()
  local top = redis.call('ZRANGE', QX, -1, -1, 'WITHSCORES')
  if #top > 0 then
    local at = num(tonumber(top[2]))
    redis.call('PEXPIREAT', Q, at)
    redis.call('PEXPIREAT', QX, at)
    redis.call('PEXPIREAT', QD, at)
  end
end

-- The waiters at queue positions from .. to - 1, as a flat list {server, waiter id, ...} for wake-ups.
local function waiters_between(from, to)
  local out = {}
  if to <= from then
    return out
  end
  local ids = redis.call('ZRANGE', Q, from, to - 1)
  for i = 1, #ids do
    local server = redis.call('HGET', QD, ids[i])
    if server then
      out[#out + 1] = server
      out[#out + 1] = ids[i]
    end
  end
  return out
end

-- Every waiter that may take a value now (positions below the list's length), for wake-ups.
local function eligible_waiters()
  return waiters_between(0, math.min(redis.call('ZCARD', Q), list_length()))
end

-- Waiter `wid` leaves the queue (whether or not it was in it).
local function leave_queue(wid)
  redis.call('ZREM', Q, wid)
  redis.call('ZREM', QX, wid)
  redis.call('HDEL', QD, wid)
  expire_queue()
end
