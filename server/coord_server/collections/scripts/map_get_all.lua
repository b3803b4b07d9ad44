--[[ Read a page of a map's fields (HSCAN).
  KEYS, reply: see _coll.lua.   ARGV[1] cursor ('0' to start)   ARGV[2] page size (a hint, as COUNT)
  ARGV[3] the most bytes the page may take
  Returns {1, version, expire_ms, length, next cursor ('0' when done), field, value, ...}, or
  {-3, bytes needed} when the page would not fit in ARGV[3] (each field counted with 16 bytes of
  framing): a smaller page size reads it. ]]
-- @include _coll
local refused = refuse_kind('map')
if refused then
  return refused
end
local reply = {1, VER, EXP, length()}
if not KIND then
  reply[5] = '0'
  return reply
end
local page = redis.call('HSCAN', DATA, ARGV[1], 'COUNT', ARGV[2])
local needed = 0
for i = 1, #page[2] do
  needed = needed + #page[2][i] + 8
end
if needed > tonumber(ARGV[3]) then
  return {-3, needed, 0, 0}
end
reply[5] = page[1]
for i = 1, #page[2] do
  reply[5 + i] = page[2][i]
end
return reply
