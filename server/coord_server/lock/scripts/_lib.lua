--[[ Shared prelude of every lock script: each includes it with "-- @include _lib" right after its
  header, and ScriptSet composes them once at load (coord_server/redis/scripts.py). Never run alone.
  Every lock script takes the same seven keys, all with the lock's hash tag {<name>}:
  KEYS[1] H     ZSET  live grants: member lock token, score expiry (Unix ms, Redis clock)
  KEYS[2] D     HASH  lock token -> "state|mode|limit|fence|owner", state H held | R released | E expired
  KEYS[3] X     ZSET  ended grants still remembered: member lock token, score end time (ms)
  KEYS[4] Q     ZSET  FIFO queue: member waiter id, score ticket
  KEYS[5] QX    ZSET  waiter liveness: member waiter id, score heartbeat deadline (ms)
  KEYS[6] QD    HASH  waiter id -> "mode|limit|woken|server|owner"
  KEYS[7] FENCE STRING newest fencing token
  ARGV[1] is always the history window in ms (how long ended grants are remembered).
  mode is X (exclusive) or S (shared); limit 0 means no limit. TTLs: H, D and X live until the last
  grant's expiry plus the history window; FENCE as long, and at least FENCE_MIN_TTL (a day), set
  whenever they are; Q, QX and QD until the last waiter's heartbeat deadline. A FENCE that expired
  does not break fencing: a new token is at least Redis TIME in µs, which has passed every earlier
  token by then unless the Redis clock went back by more than a day (see docs/lock.md). ]]
local H, D, X, Q, QX, QD, FENCE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local HISTORY = tonumber(ARGV[1])
local clock = redis.call('TIME')
local NOW = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local NOW_US = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local FENCE_MIN_TTL = 86400000

-- Grants whose lease ran out become E (remembered for the history window); dead waiters leave the
-- queue. Returns how many entries changed, so callers know whether waiters may have become eligible.
local function purge()
  local changed = 0
  local gone = redis.call('ZRANGEBYSCORE', H, '-inf', NOW, 'WITHSCORES')
  for i = 1, #gone, 2 do
    local rec = redis.call('HGET', D, gone[i])
    if rec then
      redis.call('HSET', D, gone[i], 'E' .. string.sub(rec, 2))
    end
    redis.call('ZADD', X, gone[i + 1], gone[i])
    changed = changed + 1
  end
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', H, '-inf', NOW)
  end
  local old = redis.call('ZRANGEBYSCORE', X, '-inf', NOW - HISTORY)
  for i = 1, #old do
    redis.call('HDEL', D, old[i])
  end
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', X, '-inf', NOW - HISTORY)
  end
  local dead = redis.call('ZRANGEBYSCORE', QX, '-inf', NOW)
  for i = 1, #dead do
    redis.call('ZREM', Q, dead[i])
    redis.call('HDEL', QD, dead[i])
    changed = changed + 1
  end
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', QX, '-inf', NOW)
  end
  return changed
end

-- The TTL rule for grant keys: until the last live grant ends, plus the history window. The fence
-- counter outlives them (a resume compares a grant's fence with it) and lasts at least a day, so the
-- Redis clock has long passed every token it held when it goes.
local function expire_grants()
  local top = redis.call('ZRANGE', H, -1, -1, 'WITHSCORES')
  local last = NOW
  if #top > 0 and tonumber(top[2]) > last then
    last = tonumber(top[2])
  end
  local ttl = last - NOW + HISTORY
  redis.call('PEXPIRE', H, ttl)
  redis.call('PEXPIRE', D, ttl)
  redis.call('PEXPIRE', X, ttl)
  redis.call('PEXPIRE', FENCE, math.max(ttl, FENCE_MIN_TTL))
end

-- The TTL rule for queue keys: until the last waiter's heartbeat deadline (plus a second).
local function expire_queue()
  local top = redis.call('ZRANGE', QX, -1, -1, 'WITHSCORES')
  if #top > 0 then
    local ttl = tonumber(top[2]) - NOW + 1000
    redis.call('PEXPIRE', Q, ttl)
    redis.call('PEXPIRE', QX, ttl)
    redis.call('PEXPIRE', QD, ttl)
  end
end

-- How many live grants there are, and whether the only one is exclusive.
local function holder_state()
  local n = redis.call('ZCARD', H)
  local excl = false
  if n == 1 then
    local rec = redis.call('HGET', D, redis.call('ZRANGE', H, 0, 0)[1])
    excl = rec ~= false and string.sub(rec, 3, 3) == 'X'
  end
  return n, excl
end

-- Whether a request of `mode` with `limit` fits next to n holders (excl: the one holder is exclusive).
local function fits(mode, limit, n, excl)
  if mode == 'X' then
    return n == 0
  end
  return (not excl) and (limit == 0 or n < limit)
end

-- Walk the queue from its head, pretending to grant each waiter in turn, and stop at the first one
-- that does not fit (strict FIFO: nobody passes a blocked waiter). visit(wid, rec) is called for each
-- waiter that fits; when it returns false the walk stops. Returns n, excl after the walk and how it
-- ended: 'end' (whole queue fits), 'blocked' or 'stopped' (by visit).
local function walk(n, excl, visit)
  local start = 0
  while true do
    local page = redis.call('ZRANGE', Q, start, start + 63)
    if #page == 0 then
      return n, excl, 'end'
    end
    for i = 1, #page do
      local rec = redis.call('HGET', QD, page[i])
      if rec then
        local mode, limit = string.match(rec, '^(%a)|(%d+)|')
        if not fits(mode, tonumber(limit), n, excl) then
          return n, excl, 'blocked'
        end
        n = n + 1
        if mode == 'X' then
          excl = true
        end
        if visit and visit(page[i], rec) == false then
          return n, excl, 'stopped'
        end
      end
    end
    start = start + 64
  end
end

-- The waiters that could be granted now, as a flat list {server, waiter id, ...}, for wake-ups.
-- Waiters already woken are skipped unless `all`; every returned waiter is marked woken.
local function wake_list(all)
  local out = {}
  local n, excl = holder_state()
  walk(n, excl, function(wid, rec)
    local head, woken, server = string.match(rec, '^(%a|%d+|)(%d)|([^|]*)|')
    if all or woken == '0' then
      out[#out + 1] = server
      out[#out + 1] = wid
    end
    if woken == '0' then
      redis.call('HSET', QD, wid, head .. '1' .. string.sub(rec, #head + 2))
    end
    return true
  end)
  return out
end

-- How a script that may have changed the lock ends: when `changed` (entries purged, ended or granted)
-- is above 0, the grant keys get their TTL again and the waiters that may now be granted are returned
-- for wake-ups (as wake_list(false): each is marked woken); when nothing changed, nobody is woken ({}).
local function settle(changed)
  if changed > 0 then
    expire_grants()
    return wake_list(false)
  end
  return {}
end

-- Up to `count` live holders, soonest expiry first, as {record, expiry} pairs.
local function holders(count)
  local rows = redis.call('ZRANGEBYSCORE', H, '(' .. NOW, '+inf', 'WITHSCORES', 'LIMIT', 0, count)
  local out = {}
  for i = 1, #rows, 2 do
    out[#out + 1] = {redis.call('HGET', D, rows[i]) or '', rows[i + 1]}
  end
  return out
end

-- Ends the live grant `token` with `state` ('R' or 'E'); returns true when it was live.
local function end_grant(token, state)
  local rec = redis.call('HGET', D, token)
  if redis.call('ZREM', H, token) == 0 or not rec then
    return false
  end
  redis.call('HSET', D, token, state .. string.sub(rec, 2))
  redis.call('ZADD', X, NOW, token)
  return true
end

-- The answer to a token that holds nothing: 'NOT_HELD' or 'HELD_BY_OTHER' by the lock's state.
local function unknown_token()
  if redis.call('ZCARD', H) > 0 then
    return 'HELD_BY_OTHER'
  end
  return 'NOT_HELD'
end
