--[[ Delete one cache entry, optionally only at an expected version; its tombstone keeps version and fences.
  KEYS[1] entry  coord:<tenant>:cache:{<key>}   KEYS[2] tombstone  coord:<tenant>:cache:{<key>}:tomb
  (layout of both: _entry.lua)   KEYS[3..6] the key's fill lease and its waiter queue (see _lease.lua)
  ARGV[1] expected version (decimal) or '' for any   ARGV[2] tombstone ttl ms (> 0)
  ARGV[3] invalidation channel ('' = none): a deletion publishes '0 <KEYS[1]>' there
  Returns {outcome, version, wake}: outcome 1 deleted | 2 not found | 3 version mismatch (entry untouched).
  The entry is replaced by its tombstone: its version and fences without value or tags, with its own
  TTL, so the next Set cannot reuse a version if the clock steps back, and fenced writes stay fenced.
  An entry past its expiry, kept for its stale grace, is not found, and goes the same way (no GetOrLease
  serves it stale after the Delete).
  Unless the version did not match, the key's fill lease ends, entry or not (a value computed before the
  Delete cannot be stored after it); wake is then the first waiting GetOrLease call as {server, waiter
  id} (it takes a new lease), else {}. ]]
-- @include _lease
-- @include _entry
local expected, tomb_ttl, channel = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if not expected or not tomb_ttl or tomb_ttl < 1 or not channel then
  return redis.error_reply('ERR delete: needs an expected version, tombstone ttl ms >= 1, channel')
end
local e = entry_read(KEYS[1], false)
local live = e and not entry_stale(e, e_clock())
if live and expected ~= '' and string.format('%.0f', e.ver) ~= expected then
  return {3, e.ver, {}}
end
local wake = lease_end(false)
if not e then
  return {2, 0, wake}
end
redis.call('SET', KEYS[2], entry_pack({ver = e.ver, x = 0, fences = e.fences}), 'PX', tomb_ttl)
redis.call('DEL', KEYS[1])
if not live then
  return {2, 0, wake}
end
if channel ~= '' then
  redis.call('PUBLISH', channel, '0 ' .. KEYS[1])
end
return {1, e.ver, wake}
