--[[ Revoke one session, by token (current, or previous within its grace) or by session id.
  KEYS[1] records  coord:<tenant>:session:{b<n>}:m   HASH  session id -> msgpack record
  KEYS[2] attrs    coord:<tenant>:session:{b<n>}:a   HASH  session id -> msgpack {name = bytes}
  KEYS[3] ends     coord:<tenant>:session:{b<n>}:x   ZSET  session id -> end ms
  ARGV[1] session id   ARGV[2] sha256(token) hex ('' = revoke by id)   ARGV[3] tombstone ms
  Returns {1, subject} revoked | {0} no live session (unknown, already ended, expired, or a token past
  its grace).
  The record becomes a tombstone (token digests and state only; attributes are deleted at once) that
  answers "revoked" until the tombstone time is over. The subject index is not among this script's keys
  (the token does not name the subject): the caller runs prune_index.lua with the returned subject, and
  every script that reads the index (create, list, revoke-all) prunes it first, so it never lists a
  revoked session. ]]
local M, A, X = KEYS[1], KEYS[2], KEYS[3]
local sid, hash = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function fmt(n) return string.format('%.0f', n) end

local raw = redis.call('HGET', M, sid)
if not raw then
  return {0}
end
local rec = cmsgpack.unpack(raw)
if hash ~= '' and hash ~= rec.th then
  if rec.oh == nil or hash ~= rec.oh or now >= rec.gu then
    return {0}
  end
end
if rec.st or now >= rec.a or now >= rec.l + rec.i then
  return {0}
end
redis.call('HSET', M, sid, cmsgpack.pack({st = 'r', th = rec.th, oh = rec.oh, gu = rec.gu, sub = rec.sub}))
redis.call('HDEL', A, sid)
redis.call('ZADD', X, fmt(now), sid)
local linger = tonumber(ARGV[3])
local dead = redis.call('ZRANGEBYSCORE', X, '-inf', fmt(now - linger), 'LIMIT', 0, 32)
for _, id in ipairs(dead) do
  redis.call('HDEL', M, id)
  redis.call('HDEL', A, id)
  redis.call('ZREM', X, id)
end
local top = redis.call('ZRANGE', X, -1, -1, 'WITHSCORES')
if #top == 0 then
  redis.call('DEL', M, A, X)
  return {1, rec.sub}
end
local expire_at = fmt(tonumber(top[2]) + linger)
redis.call('PEXPIREAT', M, expire_at)
redis.call('PEXPIREAT', A, expire_at)
redis.call('PEXPIREAT', X, expire_at)
return {1, rec.sub}
