--[[ Add to one member's score (ZINCRBY), adding the member from 0 when absent.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5] member   ARGV[6] delta (finite, as Redis parses it)
  Returns {1, version, expire_ms, length, new score as text}, or {-3} when the new score would not be
  a number (NaN). An increment that leaves the score as it was keeps the version. ]]
-- @include _coll
local refused = refuse_kind('sorted_set') or refuse_version()
if refused then
  return refused
end
local member, delta = ARGV[5], ARGV[6]
local before = length()
local old = redis.call('ZSCORE', DATA, member)
local len = before
if not old then
  len = before + 1
  refused = refuse_size(len)
  if refused then
    return refused
  end
end
local score = redis.pcall('ZINCRBY', DATA, delta, member)
if type(score) == 'table' and score.err then
  if len > before and redis.call('ZCARD', DATA) == 0 then
    redis.call('DEL', DATA)  -- the failed call may not leave a key without a TTL behind
  end
  return {-3}
end
commit('sorted_set', len, (not old) or tonumber(score) ~= tonumber(old))
-- The score as text: Redis formats doubles so that they read back exactly.
return {1, VER, EXP, len, score}
