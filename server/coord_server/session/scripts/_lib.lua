--[[ Shared prelude of every session script: each includes it with "-- @include _lib" right after its
  header, and ScriptSet composes them once at load (coord_server/redis/scripts.py). Never run alone.
  Uses no KEYS or ARGV itself: the scripts pass their keys (all of one {b<n>} bucket) and values in.
  A session record (msgpack, in the bucket's records hash) has: sub subject, c created ms, l last
  touch ms, i idle ms, a absolute end ms, v version, th sha256(current token), oh sha256(previous
  token) and gu the end of its grace (ms), ip/ua/lb client details, st 'r' revoked | 'e' evicted
  (a tombstone: token digests, state and subject only).
  Defines:
  now                          Redis TIME in Unix ms (read once, first thing)
  fmt(n)                       n as an integer string (no Lua float formatting)
  live_record(M, sid, hash, current)
                               the record of session sid in records hash M, if the session is live
                               and hash is the digest of its current token (or of its previous one,
                               within the grace, unless current is true); hash nil skips the token
                               check (by session id). Returns rec, in_grace | nil, reason: 1 unknown
                               | 2 idle expired | 3 absolute expired | 4 revoked | 5 evicted
                               | 6 superseded (a previous token past its grace, or at all when current).
                               A digest matching neither token is unknown whatever the session's
                               state: a guessed token learns nothing.
  forget_ended(M, A, X, linger)   deletes (at most 32) sessions whose tombstone time is over
  expire_bucket(M, A, X, linger)  the bucket's keys live until its last session has ended and its
                                  tombstone time is over; deletes them once X is empty
  save_live(M, A, X, sid, rec, linger)
                                  writes rec as the record of live session sid, moves its end in X
                                  to min(last touch + idle, absolute end), then runs forget_ended
                                  and expire_bucket, so every key it writes keeps its TTL ]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function fmt(n) return string.format('%.0f', n) end

local function live_record(M, sid, hash, current)
  local raw = redis.call('HGET', M, sid)
  if not raw then
    return nil, 1
  end
  local rec = cmsgpack.unpack(raw)
  local grace = false
  if hash ~= nil and hash ~= rec.th then
    if rec.oh == nil or hash ~= rec.oh then
      return nil, 1
    end
    grace = true
  end
  if rec.st == 'r' then return nil, 4 end
  if rec.st == 'e' then return nil, 5 end
  if now >= rec.a then return nil, 3 end
  if now >= rec.l + rec.i then return nil, 2 end
  if grace and (current or now >= rec.gu) then return nil, 6 end
  return rec, grace
end

local function forget_ended(M, A, X, linger)
  local dead = redis.call('ZRANGEBYSCORE', X, '-inf', fmt(now - linger), 'LIMIT', 0, 32)
  for _, id in ipairs(dead) do
    redis.call('HDEL', M, id)
    redis.call('HDEL', A, id)
    redis.call('ZREM', X, id)
  end
end

local function expire_bucket(M, A, X, linger)
  local top = redis.call('ZRANGE', X, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('DEL', M, A, X)
    return
  end
  local expire_at = fmt(tonumber(top[2]) + linger)
  redis.call('PEXPIREAT', M, expire_at)
  redis.call('PEXPIREAT', A, expire_at)
  redis.call('PEXPIREAT', X, expire_at)
end

local function save_live(M, A, X, sid, rec, linger)
  redis.call('HSET', M, sid, cmsgpack.pack(rec))
  redis.call('ZADD', X, fmt(math.min(rec.l + rec.i, rec.a)), sid)
  forget_ended(M, A, X, linger)
  expire_bucket(M, A, X, linger)
end
