--[[ Read one cache entry.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}   (fields: v value, ver version, x expiry in Unix ms,
          t tags with the generations they had when the entry was written: see set.lua)
  ARGV[1] optional: the most value bytes to return; a longer value is not sent, only its size
  Returns {0} when absent | {1, value, version, expire_ms} | {1, value, version, expire_ms, tags} for a
  tagged entry (field t: the server checks its tags' generations before answering a hit)
  | {2, value size} when the value is longer than ARGV[1]. The expiry is the one the write recorded
  (the key's PEXPIREAT), so every read reports exactly what the write returned. ]]
local most = tonumber(ARGV[1])
if most then
  -- A batch bounds its reply before it fetches: a value it cannot afford never leaves Redis.
  local size = redis.call('HSTRLEN', KEYS[1], 'v')
  if size > most then
    return {2, size}
  end
end
local r = redis.call('HMGET', KEYS[1], 'v', 'ver', 'x', 't')
if not r[1] then
  return {0}
end
if r[4] then
  return {1, r[1], tonumber(r[2]), tonumber(r[3] or '0'), r[4]}
end
return {1, r[1], tonumber(r[2]), tonumber(r[3] or '0')}
