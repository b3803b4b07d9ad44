--[[ Read a page of a set's members (SSCAN).
  KEYS, reply: see _coll.lua.   ARGV[1] cursor ('0' to start)   ARGV[2] page size (a hint, as COUNT)
  Returns {1, version, expire_ms, length, next cursor ('0' when done), member, ...}. ]]
-- @include _coll
local refused = refuse_kind('set')
if refused then
  return refused
end
local reply = {1, VER, EXP, length()}
if not KIND then
  reply[5] = '0'
  return reply
end
local page = redis.call('SSCAN', DATA, ARGV[1], 'COUNT', ARGV[2])
reply[5] = page[1]
for i = 1, #page[2] do
  reply[5 + i] = page[2][i]
end
return reply
