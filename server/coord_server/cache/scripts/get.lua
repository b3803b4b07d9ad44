--[[ Read one cache entry.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}   (fields: v = value, ver = version)
  Returns {0} when absent | {1, value, version, expire_ms} (expire_ms by Redis TIME; 0 if no TTL) ]]
local r = redis.call('HMGET', KEYS[1], 'v', 'ver')
if not r[1] then
  return {0}
end
local pttl = redis.call('PTTL', KEYS[1])
local t = redis.call('TIME')
local expire_ms = 0
if pttl >= 0 then
  expire_ms = t[1] * 1000 + math.floor(t[2] / 1000) + pttl
end
return {1, r[1], tonumber(r[2]), expire_ms}
