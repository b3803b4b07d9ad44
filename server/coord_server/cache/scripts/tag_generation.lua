--[[ A tag's generation, read for a Set that tags its entry with it (see tag_invalidate.lua).
  KEYS[1] tag key  coord:<tenant>:cache:tag:{<tag>}  STRING  the tag's generation (decimal)
  ARGV[1] ttl ms (>= 1): the entry TTL limit (COORD_MAX_TTL) plus a margin
  Returns the generation (decimal string). A missing tag key is created with the Redis TIME in
  microseconds, so a generation stored with an entry is never 0 and a missing tag key (expired,
  evicted) matches no entry: its entries read as misses, never as stale hits. Either way the key's
  TTL is renewed to ARGV[1], so a live tag key outlives every entry written with its generation. ]]
local ttl = tonumber(ARGV[1])
if not ttl or ttl < 1 then
  return redis.error_reply('ERR tag_generation: needs ttl ms >= 1')
end
local gen = redis.call('GET', KEYS[1])
if gen then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return gen
end
local t = redis.call('TIME')
gen = string.format('%.0f', t[1] * 1000000 + t[2])
redis.call('SET', KEYS[1], gen, 'PX', ttl)
return gen
