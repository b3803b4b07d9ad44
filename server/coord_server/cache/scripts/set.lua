--[[ Write one cache entry under a condition, an optional fence and an optional fill lease: value,
  version and TTL together.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}       KEYS[2] tombstone hash  coord:<tenant>:cache:{<key>}:tomb
  KEYS[3..6] the key's fill lease and its waiter queue (see _lease.lua)
  ARGV[1] value   ARGV[2] ttl ms (> 0)
  ARGV[3] condition: 0 always | 1 if absent | 2 if present | 3 if version   ARGV[4] expected version (decimal)
  ARGV[5] fence lock name ('' = unfenced)   ARGV[6] fencing token (decimal, < 2^53)
  ARGV[7] invalidation channel ('' = none): a stored write publishes '<version> <KEYS[1]>' there
  ARGV[8] lease token ('' = none): the write is the fill of that lease, made only while it is the key's
  current lease (checked before anything else)
  ARGV[9] optional, the entry's tags ('' or absent = untagged): '<tag>\n<generation>' pairs joined by
  '\n' (tags hold no newline), the generations read by the server just before (tag_generation.lua).
  Stored in field t; a stored write without tags removes the field of a tagged entry it overwrites.
  Returns {outcome, version, expire_ms, fencing_token}: outcome 1 stored | 2 already exists | 3 not found
        | 4 version mismatch | 5 fenced (a higher token for that lock was accepted before; nothing written)
        | 6 lease lost (ARGV[8] is not the current lease; nothing written). A stored write ends the
        key's lease and returns a fifth element, wake: the waiting GetOrLease calls as a flat list
        {server, waiter id, ...} (all of them: they find the value); {} when there were none.
  Fields: v value, ver version, x expiry (Unix ms, = PEXPIREAT), f:<lock name> highest fencing token
  accepted for that lock, t tags with their generations (tagged entries only).
  A new version is max(Redis TIME in us, previous + 1), where "previous" is the live entry's version or the
  tombstone's (Delete renames the entry to its tombstone): versions never repeat across delete and
  re-create, and a re-created entry inherits the tombstone's fences. ]]
-- @include _lease
local head = redis.call('HMGET', KEYS[1], 'ver', 't')
local cur, had_tags = head[1], head[2]
local cond = ARGV[3]
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
if ARGV[8] ~= '' and redis.call('GET', LEASE) ~= ARGV[8] then
  local expire_ms = 0
  if cur then
    expire_ms = tonumber(redis.call('HGET', KEYS[1], 'x') or '0')
  end
  return {6, tonumber(cur or '0'), expire_ms, 0}
end
if cur then
  if cond == '1' or (cond == '3' and cur ~= ARGV[4]) then
    local outcome = 2
    if cond == '3' then outcome = 4 end
    return {outcome, tonumber(cur), tonumber(redis.call('HGET', KEYS[1], 'x') or '0'), 0}
  end
elseif cond == '2' or cond == '3' then
  return {3, 0, 0, 0}
end
local fence_field = nil
local token = 0
if ARGV[5] ~= '' then
  fence_field = 'f:' .. ARGV[5]
  token = tonumber(ARGV[6])
  local holder = KEYS[1]
  if not cur then holder = KEYS[2] end
  local seen = tonumber(redis.call('HGET', holder, fence_field) or '0')
  if seen > token then
    local expire_ms = 0
    if cur then expire_ms = tonumber(redis.call('HGET', KEYS[1], 'x') or '0') end
    return {5, tonumber(cur or '0'), expire_ms, seen}
  end
end
local prev = cur
if not cur and redis.call('EXISTS', KEYS[2]) == 1 then
  prev = redis.call('HGET', KEYS[2], 'ver')
  redis.call('RENAME', KEYS[2], KEYS[1])  -- keeps the fences; value and TTL are set below
end
local ver = math.max(t[1] * 1000000 + t[2], tonumber(prev or '0') + 1)
local expire_ms = now_ms + tonumber(ARGV[2])
local tags = ARGV[9] or ''
if tags ~= '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', string.format('%.0f', ver), 'x', string.format('%.0f', expire_ms),
    't', tags)
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', string.format('%.0f', ver), 'x', string.format('%.0f', expire_ms))
  if had_tags then  -- a tombstone never has tags (delete.lua drops them): only a live entry can
    redis.call('HDEL', KEYS[1], 't')
  end
end
if fence_field then
  redis.call('HSET', KEYS[1], fence_field, ARGV[6])
end
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', expire_ms))
if ARGV[7] ~= '' then  -- in the script: in order with every other write to this key
  redis.call('PUBLISH', ARGV[7], string.format('%.0f', ver) .. ' ' .. KEYS[1])
end
return {1, ver, expire_ms, token, lease_end(true)}
