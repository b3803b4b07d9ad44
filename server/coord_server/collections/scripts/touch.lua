--[[ Give an existing collection a new TTL, keeping its elements and version.
  KEYS, reply: see _coll.lua.   ARGV[1] the kind the caller expects   ARGV[2] ttl ms (> 0)
  Returns {1, version, expire_ms, length}, or {0, 0, 0, 0} when there is no collection. ]]
-- @include _coll
local refused = refuse_kind(ARGV[1])
if refused then
  return refused
end
if not KIND then
  return {0, 0, 0, 0}
end
EXP = NOW + tonumber(ARGV[2])
redis.call('HSET', META, 'x', num(EXP))
redis.call('PEXPIREAT', DATA, num(EXP))
redis.call('PEXPIREAT', META, num(EXP))
return {1, VER, EXP, length()}
