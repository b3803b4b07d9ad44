--[[ Revoke all live sessions of a subject, optionally except one.
  KEYS[1] records  coord:<tenant>:session:{b<n>}:m   HASH  session id -> msgpack record
  KEYS[2] attrs    coord:<tenant>:session:{b<n>}:a   HASH  session id -> msgpack {name = bytes}
  KEYS[3] ends     coord:<tenant>:session:{b<n>}:x   ZSET  session id -> end ms
  KEYS[4] subject  coord:<tenant>:session:{b<n>}:u:<subject>  ZSET session id -> created ms
  ARGV[1] session id to keep ('' = none)   ARGV[2] tombstone ms
  Returns {revoked count}. Afterwards the subject index holds the kept session only (if it is live). ]]
-- @include _lib
local M, A, X, U = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local keep = ARGV[1]
local linger = tonumber(ARGV[2])

local revoked = 0
for _, id in ipairs(redis.call('ZRANGE', U, 0, -1)) do
  local ends = redis.call('ZSCORE', X, id)
  if not ends or tonumber(ends) <= now then
    redis.call('ZREM', U, id)
  elseif id ~= keep then
    local rec = cmsgpack.unpack(redis.call('HGET', M, id))
    redis.call('HSET', M, id, cmsgpack.pack({st = 'r', th = rec.th, oh = rec.oh, gu = rec.gu, sub = rec.sub}))
    redis.call('HDEL', A, id)
    redis.call('ZADD', X, fmt(now), id)
    redis.call('ZREM', U, id)
    revoked = revoked + 1
  end
end
if redis.call('ZCARD', U) == 0 then
  redis.call('DEL', U)
end
forget_ended(M, A, X, linger)
expire_bucket(M, A, X, linger)
return {revoked}
