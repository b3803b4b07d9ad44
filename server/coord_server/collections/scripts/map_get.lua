--[[ Read fields of a map.
  KEYS, reply: see _coll.lua.   ARGV[1] the most bytes the answer may take   ARGV[2..] the fields
  Returns {1, version, expire_ms, length, value or nil per field}, or {-3, bytes needed} when the
  values would not fit in ARGV[1] (each counted with its field's name and 16 bytes of framing): then
  no value leaves Redis. ]]
-- @include _coll
local refused = refuse_kind('map')
if refused then
  return refused
end
local needed = 0
for i = 2, #ARGV do
  needed = needed + #ARGV[i] + 16 + redis.call('HSTRLEN', DATA, ARGV[i])
end
if needed > tonumber(ARGV[1]) then
  return {-3, needed, 0, 0}
end
local reply = {1, VER, EXP, length()}
local values = redis.call('HMGET', DATA, unpack(ARGV, 2))
for i = 1, #ARGV - 1 do
  reply[4 + i] = values[i]
end
return reply
