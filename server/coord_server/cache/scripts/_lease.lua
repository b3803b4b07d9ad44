--[[ _lease: a cache key's fill lease and the queue of GetOrLease calls waiting for its fill.
  Included by the scripts that take the six keys of CacheKeys.all: KEYS[1] the entry and KEYS[2]
  its tombstone (see _entry.lua), then, all under the entry's hash tag:
  KEYS[3] LEASE  STRING  the token of the key's current fill lease; PX = the lease's TTL
  KEYS[4] LQ     ZSET    the waiting calls, first come first served: waiter id -> ticket
  KEYS[5] LQX    ZSET    waiter id -> heartbeat deadline (Unix ms); a waiter past it is dead
  KEYS[6] LQD    HASH    waiter id -> id of the server it waits on (where its wake-up goes)
  One lease per key at most. Every key expires: the lease with its own TTL, the queue keys at their last
  waiter's heartbeat deadline (and they go with their last waiter). A stored Set or Increment ends
  the lease and wakes every waiter (they find the value); a Delete ends it and wakes the first one (it
  takes a new lease). Fairness: the lease goes only to the first waiter, or to a caller when nobody
  waits. ]]
local LEASE, LQ, LQX, LQD = KEYS[3], KEYS[4], KEYS[5], KEYS[6]

-- Redis time in Unix ms.
local function lease_clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Waiters whose heartbeat deadline passed leave the queue. Returns how many left.
local function lease_purge(now)
  local dead = redis.call('ZRANGEBYSCORE', LQX, '-inf', now)
  for i = 1, #dead do
    redis.call('ZREM', LQ, dead[i])
    redis.call('HDEL', LQD, dead[i])
  end
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', LQX, '-inf', now)
  end
  return #dead
end

-- The queue keys expire at the last waiter's heartbeat deadline.
local function lease_expire_queue()
  local top = redis.call('ZRANGE', LQX, -1, -1, 'WITHSCORES')
  if #top > 0 then
    local at = string.format('%.0f', tonumber(top[2]))
    redis.call('PEXPIREAT', LQ, at)
    redis.call('PEXPIREAT', LQX, at)
    redis.call('PEXPIREAT', LQD, at)
  end
end

-- The waiters at queue positions from .. to (0-based, both included; -1 is the last), as a flat list
-- {server, waiter id, ...} for wake-ups.
local function lease_waiters(from, to)
  local out = {}
  local ids = redis.call('ZRANGE', LQ, from, to)
  for i = 1, #ids do
    local server = redis.call('HGET', LQD, ids[i])
    if server then
      out[#out + 1] = server
      out[#out + 1] = ids[i]
    end
  end
  return out
end

-- Waiter `wid` joins the tail of the queue, or renews its place: its server and heartbeat deadline.
local function lease_enqueue(wid, server, now, waiter_ttl)
  if not redis.call('ZSCORE', LQ, wid) then
    local tail = redis.call('ZRANGE', LQ, -1, -1, 'WITHSCORES')
    local ticket = 1
    if #tail > 0 then
      ticket = tonumber(tail[2]) + 1
    end
    redis.call('ZADD', LQ, ticket, wid)
  end
  redis.call('HSET', LQD, wid, server)
  redis.call('ZADD', LQX, now + waiter_ttl, wid)
  lease_expire_queue()
end

-- Waiter `wid` leaves the queue (whether or not it was in it).
local function lease_leave(wid)
  redis.call('ZREM', LQ, wid)
  redis.call('ZREM', LQX, wid)
  redis.call('HDEL', LQD, wid)
  lease_expire_queue()
end

-- A write ends the key's lease: returns the waiters to wake, every one (`all`: a stored Set or
-- Increment, they find the value) or the first (a Delete: it takes a new lease). A key with neither
-- lease nor waiter costs one EXISTS.
local function lease_end(all)
  if redis.call('EXISTS', LEASE, LQ) == 0 then
    return {}
  end
  redis.call('DEL', LEASE)
  lease_purge(lease_clock())
  if all then
    return lease_waiters(0, -1)
  end
  return lease_waiters(0, 0)
end
