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
-- @include _lib
local M, A, X = KEYS[1], KEYS[2], KEYS[3]
local sid, hash = ARGV[1], ARGV[2]

local rec = live_record(M, sid, hash ~= '' and hash or nil)
if not rec then
  return {0}
end
redis.call('HSET', M, sid, cmsgpack.pack({st = 'r', th = rec.th, oh = rec.oh, gu = rec.gu, sub = rec.sub}))
redis.call('HDEL', A, sid)
redis.call('ZADD', X, fmt(now), sid)
local linger = tonumber(ARGV[3])
forget_ended(M, A, X, linger)
expire_bucket(M, A, X, linger)
return {1, rec.sub}
