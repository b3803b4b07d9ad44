--[[ Give an existing cache entry a new TTL; value and version are unchanged.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}
  ARGV[1] ttl ms (> 0)   ARGV[2] invalidation channel ('' = none): a new expiry publishes
  '<version> <KEYS[1]>' there (a near cache must not keep the entry past its old expiry's meaning)
  Returns {0} when absent | {1, expire_ms}; the expiry is recorded in field x and set with PEXPIREAT. ]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
local t = redis.call('TIME')
local expire_ms = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'x', expire_ms)
redis.call('PEXPIREAT', KEYS[1], expire_ms)
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], redis.call('HGET', KEYS[1], 'ver') .. ' ' .. KEYS[1])
end
return {1, tonumber(expire_ms)}
