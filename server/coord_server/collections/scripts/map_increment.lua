--[[ Add to one field of a map (HINCRBY or HINCRBYFLOAT), creating it from 0.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5] field   ARGV[6] 'i' integer | 'f' float
  ARGV[7] delta (decimal)
  Returns {1, version, expire_ms, length, new value as text}, or {code} for a field it cannot add to:
  -3 not a 64-bit integer | -4 the result would overflow (or not be finite) | -5 not a number. ]]
-- @include _coll
local refused = refuse_kind('map') or refuse_version()
if refused then
  return refused
end
local field, float = ARGV[5], ARGV[6] == 'f'
local before = length()
local len = before
if redis.call('HEXISTS', DATA, field) == 0 then
  len = before + 1
  refused = refuse_size(len)
  if refused then
    return refused
  end
end
local done
if float then
  done = redis.pcall('HINCRBYFLOAT', DATA, field, ARGV[7])
else
  done = redis.pcall('HINCRBY', DATA, field, ARGV[7])
end
-- Only an existing field can fail (a missing one starts from 0), so a failure leaves no new key.
if type(done) == 'table' and done.err then
  if string.find(done.err, 'overflow') or string.find(done.err, 'NaN or Infinity') then
    return {-4}
  elseif float then
    return {-5}
  end
  return {-3}
end
commit('map', len, true)
-- Read back as text: a Lua number is a double and would round integers past 2^53.
return {1, VER, EXP, len, redis.call('HGET', DATA, field)}
