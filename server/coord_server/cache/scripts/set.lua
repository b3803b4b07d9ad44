--[[ Write one cache entry under a condition: value, version and TTL together.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}       KEYS[2] tombstone  coord:<tenant>:cache:{<key>}:tomb
  ARGV[1] value   ARGV[2] ttl ms (> 0)
  ARGV[3] condition: 0 always | 1 if absent | 2 if present | 3 if version   ARGV[4] expected version (decimal)
  Returns {outcome, version, expire_ms}: outcome 1 stored | 2 already exists | 3 not found | 4 version mismatch.
  A new version is max(Redis TIME in us, previous + 1), where "previous" is the live entry's version or the
  tombstone a Delete left: versions never repeat across delete and re-create. ]]
local cur = redis.call('HGET', KEYS[1], 'ver')
local cond = ARGV[3]
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
if cur then
  if cond == '1' or (cond == '3' and cur ~= ARGV[4]) then
    local outcome = 2
    if cond == '3' then outcome = 4 end
    return {outcome, tonumber(cur), now_ms + redis.call('PTTL', KEYS[1])}
  end
elseif cond == '2' or cond == '3' then
  return {3, 0, 0}
end
local prev = tonumber(cur or redis.call('GET', KEYS[2]) or '0')
local ver = math.max(t[1] * 1000000 + t[2], prev + 1)
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', string.format('%.0f', ver))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if not cur then
  redis.call('DEL', KEYS[2])
end
return {1, ver, now_ms + tonumber(ARGV[2])}
