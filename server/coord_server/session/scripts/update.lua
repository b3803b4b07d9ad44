--[[ Update attributes of a live session: set, remove and increment, all or nothing.
  KEYS[1] records  coord:<tenant>:session:{b<n>}:m   HASH  session id -> msgpack record
  KEYS[2] attrs    coord:<tenant>:session:{b<n>}:a   HASH  session id -> msgpack {name = bytes}
  KEYS[3] ends     coord:<tenant>:session:{b<n>}:x   ZSET  session id -> end ms
  ARGV[1] session id   ARGV[2] sha256(token) hex   ARGV[3] expected version ('' = any)
  ARGV[4] attribute size limit (bytes)   ARGV[5] touch: 1 | 0   ARGV[6] tombstone ms
  ARGV[7] #set   ARGV[8] #remove   ARGV[9] #increment, then: set name, value ... remove name ...
  increment name, delta ...   (names are distinct; deltas within +/-(2^53 - 1))
  Returns {1, version, {name, new value, ...}} | {0, reason} (as validate.lua) | {2, current version}
        | {-1, name} not an integer | {-2, name} out of range | {-3, size} over the size limit.
  Every check runs before the first write. A session that ended or expired is never written, so an
  update cannot bring it back. ]]
-- @include _lib
local M, A, X = KEYS[1], KEYS[2], KEYS[3]
local sid, hash = ARGV[1], ARGV[2]
local SAFE = 9007199254740991

local rec, why = live_record(M, sid, hash)
if not rec then
  return {0, why}
end
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= rec.v then
  return {2, rec.v}
end

local attrs = {}
local packed = redis.call('HGET', A, sid)
if packed then
  attrs = cmsgpack.unpack(packed)
end
local nset, nremove, nincr = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local i = 10
for _ = 1, nset do
  attrs[ARGV[i]] = ARGV[i + 1]
  i = i + 2
end
for _ = 1, nremove do
  attrs[ARGV[i]] = nil
  i = i + 1
end
local results = {}
for _ = 1, nincr do
  local name = ARGV[i]
  local current = attrs[name] or '0'
  if not string.match(current, '^%-?%d+$') or #current > 17 then
    return {-1, name}
  end
  local value = tonumber(current) + tonumber(ARGV[i + 1])
  if math.abs(tonumber(current)) > SAFE or math.abs(value) > SAFE then
    return {-2, name}
  end
  attrs[name] = fmt(value)
  results[#results + 1] = name
  results[#results + 1] = attrs[name]
  i = i + 2
end
local size, count = 0, 0
for name, value in pairs(attrs) do
  size = size + #name + #value
  count = count + 1
end
if size > tonumber(ARGV[4]) then
  return {-3, size}
end

rec.v = rec.v + 1
if ARGV[5] == '1' then
  rec.l = now
end
if count > 0 then
  redis.call('HSET', A, sid, cmsgpack.pack(attrs))
else
  redis.call('HDEL', A, sid)
end
save_live(M, A, X, sid, rec, tonumber(ARGV[6]))
return {1, rec.v, results}
