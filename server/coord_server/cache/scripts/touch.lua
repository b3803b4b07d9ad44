--[[ Give an existing cache entry a new TTL; value and version are unchanged.
  KEYS[1] entry  coord:<tenant>:cache:{<key>}  (layout: _entry.lua)
  ARGV[1] ttl ms (> 0)   ARGV[2] invalidation channel ('' = none): a new expiry publishes
  '<version> <KEYS[1]>' there (a near cache must not keep the entry past its old expiry's meaning)
  Returns {0} when absent (or past its expiry, kept only for its stale grace) | {1, expire_ms}: the
  new expiry, recorded in the header; the key's PEXPIREAT is it plus the entry's stale grace. An entry
  of the old layout is rewritten in the string layout. ]]
-- @include _entry
local ttl, channel = tonumber(ARGV[1]), ARGV[2]
if not ttl or ttl < 1 or not channel then
  return redis.error_reply('ERR touch: needs ttl ms >= 1 and a channel')
end
local now_ms = e_clock()
local e = entry_read(KEYS[1], false)
if not e or (e.old and not e.value) or entry_stale(e, now_ms) then
  return {0}
end
e.x = now_ms + ttl
if e.old then
  entry_write(KEYS[1], e, e.value)
else
  -- In place: the header's expiry field has a fixed offset and width.
  redis.call('SETRANGE', KEYS[1], E_EXPIRY_AT, struct.pack('<I6', e.x))
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', e.x + e.grace))
end
if channel ~= '' then
  redis.call('PUBLISH', channel, string.format('%.0f', e.ver) .. ' ' .. KEYS[1])
end
return {1, e.x}
