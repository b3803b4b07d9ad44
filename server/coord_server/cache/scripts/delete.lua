--[[ Delete one cache entry, optionally only at an expected version; leave a tombstone with its version.
  KEYS[1] entry hash  coord:<tenant>:cache:{<key>}       KEYS[2] tombstone  coord:<tenant>:cache:{<key>}:tomb
  ARGV[1] expected version (decimal) or '' for any   ARGV[2] tombstone ttl ms (> 0)
  Returns {outcome, version}: outcome 1 deleted | 2 not found | 3 version mismatch (entry untouched).
  The tombstone (with its TTL) keeps the next Set from reusing a version if the clock steps back. ]]
local cur = redis.call('HGET', KEYS[1], 'ver')
if not cur then
  return {2, 0}
end
if ARGV[1] ~= '' and cur ~= ARGV[1] then
  return {3, tonumber(cur)}
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], cur, 'PX', ARGV[2])
return {1, tonumber(cur)}
