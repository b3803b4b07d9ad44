--[[ Delete one cache entry, optionally only at an expected version; its tombstone keeps version and fences.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}       KEYS[2] tombstone hash  coord:<tenant>:cache:{<key>}:tomb
  ARGV[1] expected version (decimal) or '' for any   ARGV[2] tombstone ttl ms (> 0)
  Returns {outcome, version}: outcome 1 deleted | 2 not found | 3 version mismatch (entry untouched).
  The entry loses its value and becomes the tombstone (RENAME within one hash tag), with its own TTL: the
  next Set cannot reuse a version if the clock steps back, and fenced writes stay fenced. ]]
local cur = redis.call('HGET', KEYS[1], 'ver')
if not cur then
  return {2, 0}
end
if ARGV[1] ~= '' and cur ~= ARGV[1] then
  return {3, tonumber(cur)}
end
redis.call('HDEL', KEYS[1], 'v')
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {1, tonumber(cur)}
