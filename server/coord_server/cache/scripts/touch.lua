--[[ Give an existing cache entry a new TTL; value and version are unchanged.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}
  ARGV[1] ttl ms (> 0)
  Returns {0} when absent | {1, expire_ms} ]]
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then
  return {0}
end
local t = redis.call('TIME')
return {1, t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])}
