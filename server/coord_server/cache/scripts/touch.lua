--[[ Give an existing cache entry a new TTL; value and version are unchanged.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}
  ARGV[1] ttl ms (> 0)
  Returns {0} when absent | {1, expire_ms}; the expiry is recorded in field x and set with PEXPIREAT. ]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
local t = redis.call('TIME')
local expire_ms = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'x', expire_ms)
redis.call('PEXPIREAT', KEYS[1], expire_ms)
return {1, tonumber(expire_ms)}
