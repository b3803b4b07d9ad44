--[[ Give a live session a new token; the old one keeps working until the end of its grace.
  KEYS[1] records  coord:<tenant>:session:{b<n>}:m   HASH  session id -> msgpack record
  KEYS[2] attrs    coord:<tenant>:session:{b<n>}:a   HASH  session id -> msgpack {name = bytes}
  KEYS[3] ends     coord:<tenant>:session:{b<n>}:x   ZSET  session id -> end ms
  ARGV[1] session id   ARGV[2] sha256(old token) hex   ARGV[3] sha256(new token) hex   ARGV[4] grace ms
  ARGV[5] tombstone ms
  Returns {1, subject, version, created, last, idle ms, absolute at, ip, ua, label, grace until}
        | {0, reason} (as validate.lua; 6 when the token is itself a rotated-out one).
  Only the current token rotates, so concurrent rotations cannot fork a session. Only the digest of the
  new token is stored; nothing a holder of the old token can read leads to the new one. The grace of
  any earlier token ends here: at most one previous token works at a time. ]]
local M, A, X = KEYS[1], KEYS[2], KEYS[3]
local sid, hash = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function fmt(n) return string.format('%.0f', n) end

local raw = redis.call('HGET', M, sid)
if not raw then
  return {0, 1}
end
local rec = cmsgpack.unpack(raw)
if hash ~= rec.th and (rec.oh == nil or hash ~= rec.oh) then
  return {0, 1}
end
if rec.st == 'r' then return {0, 4} end
if rec.st == 'e' then return {0, 5} end
if now >= rec.a then return {0, 3} end
if now >= rec.l + rec.i then return {0, 2} end
if hash ~= rec.th then return {0, 6} end

rec.oh = rec.th
rec.gu = now + tonumber(ARGV[4])
rec.th = ARGV[3]
rec.l = now
redis.call('HSET', M, sid, cmsgpack.pack(rec))
redis.call('ZADD', X, fmt(math.min(now + rec.i, rec.a)), sid)
local linger = tonumber(ARGV[5])
local dead = redis.call('ZRANGEBYSCORE', X, '-inf', fmt(now - linger), 'LIMIT', 0, 32)
for _, id in ipairs(dead) do
  redis.call('HDEL', M, id)
  redis.call('HDEL', A, id)
  redis.call('ZREM', X, id)
end
local top = redis.call('ZRANGE', X, -1, -1, 'WITHSCORES')
local expire_at = fmt(tonumber(top[2]) + linger)
redis.call('PEXPIREAT', M, expire_at)
redis.call('PEXPIREAT', A, expire_at)
redis.call('PEXPIREAT', X, expire_at)
return {1, rec.sub, rec.v, rec.c, rec.l, rec.i, rec.a, rec.ip, rec.ua, rec.lb, rec.gu}
