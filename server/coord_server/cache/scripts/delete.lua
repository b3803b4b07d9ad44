--[[ Delete one cache entry, optionally only at an expected version; its tombstone keeps version and fences.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}       KEYS[2] tombstone hash  coord:<tenant>:cache:{<key>}:tomb
  KEYS[3..6] the key's fill lease and its waiter queue (see _lease.lua)
  ARGV[1] expected version (decimal) or '' for any   ARGV[2] tombstone ttl ms (> 0)
  ARGV[3] invalidation channel ('' = none): a deletion publishes '0 <KEYS[1]>' there
  Returns {outcome, version, wake}: outcome 1 deleted | 2 not found | 3 version mismatch (entry untouched).
  The entry loses its value and its tags (field t) and becomes the tombstone (RENAME within one hash
  tag), with its own TTL: the next Set cannot reuse a version if the clock steps back, and fenced writes
  stay fenced.
  Unless the version did not match, the key's fill lease ends, entry or not (a value computed before the
  Delete cannot be stored after it); wake is then the first waiting GetOrLease call as {server, waiter
  id} (it takes a new lease), else {}. ]]
-- @include _lease
local cur = redis.call('HGET', KEYS[1], 'ver')
if cur and ARGV[1] ~= '' and cur ~= ARGV[1] then
  return {3, tonumber(cur), {}}
end
local wake = lease_end(false)
if not cur then
  return {2, 0, wake}
end
redis.call('HDEL', KEYS[1], 'v', 't')
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], '0 ' .. KEYS[1])
end
return {1, tonumber(cur), wake}
