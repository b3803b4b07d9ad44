--[[ Shared prelude of every election script, included right after the lock's prelude (_lib.lua here
  is the lock service's own file: an election is an exclusive lock in a key space of its own, and
  its scripts run the lock's scripts unchanged, each wrapped in a function, then record what changed
  for the leadership in the same step). Never run alone.
  Besides the seven lock keys KEYS[1..7] (see _lib.lua), every election script takes two more:
  KEYS[8] LEADER HASH   floor: the newest revision the log no longer has (or the one it began after)
                        last: the newest revision
                        and while someone leads: token (its lock token), term, value, elect and
                        update (ms, Redis clock: when it was elected, when value was last set)
  KEYS[9] LOG    STREAM the changes, by revision "<term>-<n>": field k is E (elected), P (proclaimed)
                        or N (ended); t the term; v the value (E, P); e the elect time (E, P); r the
                        reason (N: R resigned or the stream ended, E expired); at the change time
  The leader is the holder of the election's lock; its term is the grant's fencing token. A grant
  that ends without a script of this service noticing (a lease that ran out) is logged as ended by
  the next script that looks (reconcile). LEADER and LOG live as long as the lock's fence counter
  and at least RETAIN (a day), renewed by every script that may change them (touch). The log keeps
  the newest LOG_MAX changes; a resume after a revision below `floor` may have missed some. Revisions
  stay below 2^53 (terms are about Redis TIME in microseconds), so Lua numbers compare them exactly. ]]
local LEADER, LOG = KEYS[8], KEYS[9]
local LOG_MAX = 1000
local RETAIN = 86400000

-- Whether revision x comes before revision y ("<a>-<b>", ordered by a then b).
local function rev_before(x, y)
  local xa, xb = string.match(x, '^(%d+)-(%d+)$')
  local ya, yb = string.match(y, '^(%d+)-(%d+)$')
  xa, xb, ya, yb = tonumber(xa), tonumber(xb), tonumber(ya), tonumber(yb)
  return xa < ya or (xa == ya and xb < yb)
end

-- Give the election a log if it has none. It begins after "<Redis TIME in µs>-0": every term granted
-- from now on is at least that time, so its changes come after; a resume from an older revision (of
-- a log that expired) is a gap.
local function open_log()
  if redis.call('HEXISTS', LEADER, 'floor') == 0 then
    local floor = string.format('%.0f', NOW_US) .. '-0'
    redis.call('HSET', LEADER, 'floor', floor, 'last', floor)
  end
end

-- Append a change of `term` (text) with the given fields; returns its revision. The revision is
-- "<term>-1" for the first change of a term, then "<term>-2"...: always above the newest one.
local function append(term, ...)
  open_log()
  local a, b = string.match(redis.call('HGET', LEADER, 'last'), '^(%d+)-(%d+)$')
  local id
  if tonumber(term) > tonumber(a) then
    id = term .. '-1'
  else
    id = a .. '-' .. (tonumber(b) + 1)
  end
  redis.call('XADD', LOG, id, 'at', NOW, ...)
  redis.call('HSET', LEADER, 'last', id)
  local excess = redis.call('XLEN', LOG) - LOG_MAX
  if excess > 0 then
    local gone = redis.call('XRANGE', LOG, '-', '+', 'COUNT', excess)
    redis.call('HSET', LEADER, 'floor', gone[#gone][1])
    redis.call('XTRIM', LOG, 'MAXLEN', LOG_MAX)
  end
  return id
end

-- Whether the grant of lock token `token` is live now, by the Redis clock.
local function live(token)
  local expiry = redis.call('ZSCORE', H, token)
  return expiry ~= false and tonumber(expiry) > NOW
end

-- If the recorded leader's grant is no longer live, its leadership has ended: log it, clear it.
local function reconcile()
  local rec = redis.call('HMGET', LEADER, 'token', 'term')
  local token, term = rec[1], rec[2]
  if not token or live(token) then
    return
  end
  local grant = redis.call('HGET', D, token)
  local reason = 'E'
  if grant and string.sub(grant, 1, 1) == 'R' then
    reason = 'R'
  end
  redis.call('HDEL', LEADER, 'token', 'term', 'value', 'elect', 'update')
  append(term, 'k', 'N', 't', term, 'r', reason)
end

-- Record lock token `token` (granted just now with fencing token `term`) as the leader with `value`;
-- returns the revision of its election.
local function elect(token, term, value)
  redis.call('HSET', LEADER, 'token', token, 'term', term, 'value', value, 'elect', NOW, 'update', NOW)
  return append(term, 'k', 'E', 't', term, 'v', value, 'e', NOW)
end

-- The TTL rule of LEADER and LOG: as long as the fence counter (which outlives every grant), and at
-- least RETAIN.
local function touch()
  local ttl = math.max(redis.call('PTTL', FENCE), RETAIN)
  redis.call('PEXPIRE', LEADER, ttl)
  redis.call('PEXPIRE', LOG, ttl)
end

-- The current leadership as {term, value, elect ms, update ms, lease expiry ms}, or {} for nobody.
local function leadership()
  local f = redis.call('HMGET', LEADER, 'token', 'term', 'value', 'elect', 'update')
  if not f[1] then
    return {}
  end
  return {f[2], f[3], f[4], f[5], redis.call('ZSCORE', H, f[1]) or '0'}
end

-- The newest revision, or '' when the election has no log.
local function last_revision()
  return redis.call('HGET', LEADER, 'last') or ''
end
