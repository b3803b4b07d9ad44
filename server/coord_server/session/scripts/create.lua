--[[ Create a session: record, expiry index, per-subject index and session limit in one step.
  KEYS[1] records   coord:<tenant>:session:{b<n>}:m   HASH  session id -> msgpack record
  KEYS[2] attrs     coord:<tenant>:session:{b<n>}:a   HASH  session id -> msgpack {name = bytes}
  KEYS[3] ends      coord:<tenant>:session:{b<n>}:x   ZSET  session id -> end ms (deadline, or when ended)
  KEYS[4] subject   coord:<tenant>:session:{b<n>}:u:<subject>  ZSET session id -> created ms
                    (absent for an anonymous session)
  ARGV[1] session id   ARGV[2] sha256(token) hex   ARGV[3] subject   ARGV[4] idle ms   ARGV[5] absolute ms
  ARGV[6] max sessions (0 = none)   ARGV[7] policy: 1 reject | 2 evict oldest
  ARGV[8] ip   ARGV[9] user agent   ARGV[10] label   ARGV[11] tombstone ms
  ARGV[12..] attribute name, value, name, value ...
  Returns {1, created_ms, {evicted session ids}} | {0, live sessions} limit reached (reject) | {-1} id taken.
  The limit check and the insert are one atomic step, so N concurrent creates with limit L leave
  exactly L sessions. ]]
-- @include _lib
local M, A, X, U = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid = ARGV[1]
local linger = tonumber(ARGV[11])

-- Forget ended sessions whose tombstone time is over (bounded work per call).
forget_ended(M, A, X, linger)

if redis.call('HEXISTS', M, sid) == 1 then
  return {-1}
end

local idle, absolute = tonumber(ARGV[4]), tonumber(ARGV[5])
local abs_at = now + absolute
local deadline = math.min(now + idle, abs_at)
local evicted = {}

if U then
  -- The subject index holds only live sessions: drop members whose session ended or expired.
  local members = redis.call('ZRANGE', U, 0, -1)
  local live = {}
  for _, id in ipairs(members) do
    local ends = redis.call('ZSCORE', X, id)
    if ends and tonumber(ends) > now then
      live[#live + 1] = id
    else
      redis.call('ZREM', U, id)
    end
  end
  local max = tonumber(ARGV[6])
  if max > 0 and #live >= max then
    if ARGV[7] ~= '2' then
      if #live == 0 then redis.call('DEL', U) end
      return {0, #live}
    end
    for i = 1, #live - max + 1 do
      local id = live[i]
      local rec = cmsgpack.unpack(redis.call('HGET', M, id))
      redis.call('HSET', M, id, cmsgpack.pack({st = 'e', th = rec.th, oh = rec.oh, gu = rec.gu, sub = rec.sub}))
      redis.call('HDEL', A, id)
      redis.call('ZADD', X, fmt(now), id)
      redis.call('ZREM', U, id)
      evicted[#evicted + 1] = id
    end
  end
  redis.call('ZADD', U, fmt(now), sid)
  local pttl = redis.call('PTTL', U)
  if pttl < 0 or now + pttl < abs_at then
    redis.call('PEXPIREAT', U, fmt(abs_at))
  end
end

local attrs, n = {}, 0
for i = 12, #ARGV, 2 do
  attrs[ARGV[i]] = ARGV[i + 1]
  n = n + 1
end
local rec = {sub = ARGV[3], c = now, l = now, i = idle, a = abs_at, v = 1, th = ARGV[2],
             ip = ARGV[8], ua = ARGV[9], lb = ARGV[10]}
redis.call('HSET', M, sid, cmsgpack.pack(rec))
if n > 0 then
  redis.call('HSET', A, sid, cmsgpack.pack(attrs))
end
redis.call('ZADD', X, fmt(deadline), sid)

-- The bucket's keys live until the last session in it has ended and its tombstone time is over.
expire_bucket(M, A, X, linger)
return {1, now, evicted}
