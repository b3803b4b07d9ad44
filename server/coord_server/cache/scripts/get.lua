--[[ Read one cache entry.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}   (fields: v value, ver version, x expiry in Unix ms)
  Returns {0} when absent | {1, value, version, expire_ms}. The expiry is the one the write recorded
  (the key's PEXPIREAT), so every read reports exactly what the write returned. ]]
local r = redis.call('HMGET', KEYS[1], 'v', 'ver', 'x')
if not r[1] then
  return {0}
end
return {1, r[1], tonumber(r[2]), tonumber(r[3] or '0')}
