--[[ A key prefix's generation, read for a Set (or Increment) of a key under it (see prefixes.py).
  KEYS[1] prefix key  coord:<tenant>:cache:prefix:{<prefix>}  STRING  its generation (decimal)
  ARGV[1] ttl ms (>= 1): the entry TTL limit (COORD_MAX_TTL) plus a margin
  Returns the generation (decimal string), or false (nil to the caller) when the prefix was never
  invalidated (or its key expired): the entry then records nothing for it, which reads as "written
  before any invalidation of it". Unlike a tag's, a missing key is not created: a Set costs no key
  per namespace. An existing key's TTL is renewed to ARGV[1], so it outlives the entry. ]]
local ttl = tonumber(ARGV[1])
if not ttl or ttl < 1 then
  return redis.error_reply('ERR prefix_generation: needs ttl ms >= 1')
end
local gen = redis.call('GET', KEYS[1])
if gen then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return gen
