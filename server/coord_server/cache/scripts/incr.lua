--[[ Add a signed 64-bit delta to an integer entry, creating it from 0 (with the given TTL) if absent.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}       KEYS[2] tombstone hash  coord:<tenant>:cache:{<key>}:tomb
  ARGV[1] delta (decimal int64)   ARGV[2] ttl ms for a new entry (> 0); field x records the expiry (Unix ms)
  ARGV[3] invalidation channel ('' = none): the write publishes '<version> <KEYS[1]>' there
  Returns {1, value (decimal string, exact int64), version, created 0|1, expire_ms}
        | {-1} value is not an integer | {-2} result would overflow int64.  Nothing is written on -1/-2. ]]
local cur = redis.call('HGET', KEYS[1], 'ver')
local prev = cur
if not cur and redis.call('EXISTS', KEYS[2]) == 1 then
  -- HINCRBY below cannot fail on the missing value field, so this write is never left half-done.
  prev = redis.call('HGET', KEYS[2], 'ver')
  redis.call('RENAME', KEYS[2], KEYS[1])  -- keeps version history and fences; no value field
end
local res = redis.pcall('HINCRBY', KEYS[1], 'v', ARGV[1])
if type(res) == 'table' and res.err then
  if string.find(res.err, 'overflow') then
    return {-2}
  end
  return {-1}
end
local t = redis.call('TIME')
local ver = math.max(t[1] * 1000000 + t[2], tonumber(prev or '0') + 1)
redis.call('HSET', KEYS[1], 'ver', string.format('%.0f', ver))
local created = 0
local expire_ms
if cur then
  expire_ms = tonumber(redis.call('HGET', KEYS[1], 'x') or '0')
else
  created = 1
  expire_ms = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'x', string.format('%.0f', expire_ms))
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', expire_ms))
end
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], string.format('%.0f', ver) .. ' ' .. KEYS[1])
end
return {1, redis.call('HGET', KEYS[1], 'v'), ver, created, expire_ms}
