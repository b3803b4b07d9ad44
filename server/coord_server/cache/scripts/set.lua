--[[ Write one cache entry under a condition, an optional fence and an optional fill lease: value,
  version and TTL together.
  KEYS[1] entry  coord:<tenant>:cache:{<key>}   KEYS[2] tombstone  coord:<tenant>:cache:{<key>}:tomb
  (layout of both: _entry.lua)   KEYS[3..6] the key's fill lease and its waiter queue (see _lease.lua)
  ARGV[1] value   ARGV[2] ttl ms (> 0)
  ARGV[3] condition: 0 always | 1 if absent | 2 if present | 3 if version   ARGV[4] expected version (decimal)
  ARGV[5] fence lock name ('' = unfenced)   ARGV[6] fencing token (decimal, < 2^53)
  ARGV[7] invalidation channel ('' = none): a stored write publishes '<version> <KEYS[1]>' there
  ARGV[8] lease token ('' = none): the write is the fill of that lease, made only while it is the key's
  current lease (checked before anything else)
  ARGV[9] optional, the entry's tags ('' or absent = untagged): '<tag>\n<generation>' pairs joined by
  '\n' (tags hold no newline), the generations read by the server just before (tag_generation.lua).
  A stored write replaces the entry's tags with these.
  ARGV[10] optional, stale grace ms (0 or absent = none, < 2^32): the key lives this much past its
  expiry, a stale value that only a GetOrLease serving stale values returns (get_or_lease.lua)
  ARGV[11] optional, compute time ms (0 or absent = none, < 2^32): how long the value took to compute,
  stored for callers that refresh early (XFetch)
  ARGV[12] optional, push limit in bytes (0 or absent = none): a stored write of an untagged value of at
  most this many bytes publishes the entry itself instead, for the near caches that keep values:
  '=<version> <expiry ms> <compute time ms> <length of KEYS[1]> <KEYS[1]><value>' (the server sends 0
  for a key that has namespaces: the reader would have generations to check)
  Returns {outcome, version, expire_ms, fencing_token}: outcome 1 stored | 2 already exists | 3 not found
        | 4 version mismatch | 5 fenced (a higher token for that lock was accepted before; nothing written)
        | 6 lease lost (ARGV[8] is not the current lease; nothing written). A stored write ends the
        key's lease and returns a fifth element, wake: the waiting GetOrLease calls as a flat list
        {server, waiter id, ...} (all of them: they find the value); {} when there were none.
  An entry past its expiry (kept for its stale grace) counts as absent for the condition, but, as a
  tombstone does, still gives the previous version and the fences.
  A new version is max(Redis TIME in us, previous + 1), where "previous" is the live (or stale) entry's
  version or the tombstone's: versions never repeat across delete and re-create, and a re-created
  entry inherits the tombstone's fences (highest token accepted per lock name). ]]
-- @include _lease
-- @include _entry
local value, ttl, cond, expected = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local lock, token, channel, lease = ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8]
local tags, grace, cost = ARGV[9] or '', tonumber(ARGV[10] or '0'), tonumber(ARGV[11] or '0')
local push = tonumber(ARGV[12] or '0')
if not value or not ttl or ttl < 1 or not (cond == '0' or cond == '1' or cond == '2' or cond == '3')
    or not expected or not lock or (lock ~= '' and not token) or not channel or not lease
    or not grace or grace < 0 or grace >= 4294967296 or not cost or cost < 0 or cost >= 4294967296
    or not push then
  return redis.error_reply('ERR set: needs value, ttl ms >= 1, condition 0..3, version, fence, channel, '
    .. 'lease, grace and compute time < 2^32 ms, push limit')
end
local now_ms, now_us = e_clock()
local e = entry_read(KEYS[1], false)
local live = e and not entry_stale(e, now_ms)
local function current()
  if live then return e.ver, e.x end
  return 0, 0
end
if lease ~= '' and redis.call('GET', LEASE) ~= lease then
  local ver, x = current()
  return {6, ver, x, 0}
end
if live then
  if cond == '1' or (cond == '3' and string.format('%.0f', e.ver) ~= expected) then
    local outcome = 2
    if cond == '3' then outcome = 4 end
    return {outcome, e.ver, e.x, 0}
  end
elseif cond == '2' or cond == '3' then
  return {3, 0, 0, 0}
end
-- The version floor and the fences: the entry's (live or stale), else the tombstone's.
local prev, tomb = e, nil
if not e then
  tomb = entry_read(KEYS[2], false)
  prev = tomb
end
local fences = prev and prev.fences
if lock ~= '' then
  local seen = fence_of(fences, lock)
  if seen > token then
    local ver, x = current()
    return {5, ver, x, seen}
  end
  fences = fence_set(fences, lock, ARGV[6])
else
  token = 0
end
local ver = math.max(now_us, (prev and prev.ver or 0) + 1)
local new = {ver = ver, x = now_ms + ttl, grace = grace, cost = cost, fences = fences, tags = tags}
entry_write(KEYS[1], new, value)
if tomb then
  redis.call('DEL', KEYS[2])
end
if channel ~= '' then  -- in the script: in order with every other write to this key
  if tags == '' and #value <= push then
    redis.call('PUBLISH', channel, string.format('=%.0f %.0f %d %d ', ver, new.x, cost, #KEYS[1])
      .. KEYS[1] .. value)
  else
    redis.call('PUBLISH', channel, string.format('%.0f', ver) .. ' ' .. KEYS[1])
  end
end
return {1, ver, new.x, token, lease_end(true)}
