--[[ Invalidate a tag: every entry written with its current generation becomes a miss.
  KEYS[1] tag key  coord:<tenant>:cache:tag:{<tag>}  STRING  the tag's generation (decimal)
  ARGV[1] ttl ms (>= 1): the entry TTL limit (COORD_MAX_TTL) plus a margin
  Returns the new generation, or 0 when the tag key is missing (no live entry can match a missing
  key: nothing to do; a Set reading the tag after this creates the key with a new generation).
  The new generation is max(Redis TIME in us, current + 1): strictly greater than every generation
  the key ever held, even within one microsecond or if the clock steps back, so no entry written
  before this call can match it again. ]]
local ttl = tonumber(ARGV[1])
if not ttl or ttl < 1 then
  return redis.error_reply('ERR tag_invalidate: needs ttl ms >= 1')
end
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
local t = redis.call('TIME')
local gen = math.max(t[1] * 1000000 + t[2], tonumber(cur) + 1)
redis.call('SET', KEYS[1], string.format('%.0f', gen), 'PX', ttl)
return gen
