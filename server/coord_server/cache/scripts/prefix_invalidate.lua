--[[ Invalidate a key prefix: every entry under it written before this call becomes a miss.
  KEYS[1] prefix key  coord:<tenant>:cache:prefix:{<prefix>}  STRING  its generation (decimal)
  ARGV[1] ttl ms (>= 1): the entry TTL limit (COORD_MAX_TTL) plus a margin
  Returns the new generation: max(Redis TIME in us, current + 1), so strictly greater than every
  generation the key ever held (also within one microsecond, or if the clock steps back) and never 0.
  A missing key is created: entries that recorded no generation for the prefix (written while it had
  none) no longer match, and neither do those that recorded one of an expired key (a re-created key
  starts from the clock, past every generation the expired one held). ]]
local ttl = tonumber(ARGV[1])
if not ttl or ttl < 1 then
  return redis.error_reply('ERR prefix_invalidate: needs ttl ms >= 1')
end
local t = redis.call('TIME')
local gen = t[1] * 1000000 + t[2]
local cur = redis.call('GET', KEYS[1])
if cur then
  gen = math.max(gen, tonumber(cur) + 1)
end
redis.call('SET', KEYS[1], string.format('%.0f', gen), 'PX', ttl)
return gen
