--[[ Add a signed 64-bit delta to an integer entry, creating it from 0 (with the given TTL) if absent.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}       KEYS[2] tombstone  coord:<tenant>:cache:{<key>}:tomb
  ARGV[1] delta (decimal int64)   ARGV[2] ttl ms for a new entry (> 0)
  Returns {1, value (decimal string, exact int64), version, created 0|1, expire_ms}
        | {-1} value is not an integer | {-2} result would overflow int64.  Nothing is written on -1/-2. ]]
local cur = redis.call('HGET', KEYS[1], 'ver')
local res = redis.pcall('HINCRBY', KEYS[1], 'v', ARGV[1])
if type(res) == 'table' and res.err then
  if string.find(res.err, 'overflow') then
    return {-2}
  end
  return {-1}
end
local t = redis.call('TIME')
local prev = tonumber(cur or redis.call('GET', KEYS[2]) or '0')
local ver = math.max(t[1] * 1000000 + t[2], prev + 1)
redis.call('HSET', KEYS[1], 'ver', string.format('%.0f', ver))
local created = 0
if not cur then
  created = 1
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
end
local pttl = redis.call('PTTL', KEYS[1])
local expire_ms = 0
if pttl >= 0 then
  expire_ms = t[1] * 1000 + math.floor(t[2] / 1000) + pttl
end
return {1, redis.call('HGET', KEYS[1], 'v'), ver, created, expire_ms}
