--[[ Read values by position (LRANGE), at most a page of them.
  KEYS, reply: see _coll.lua.   ARGV[1] start   ARGV[2] stop (included; negative counts from the back)
  ARGV[3] the most values to return   ARGV[4] the most bytes of values to return (each counted with 8
  bytes of framing; always at least one value)
  Returns {1, version, expire_ms, length, next_start, values...}: next_start is the position (from the
  front) of the first value of the range not returned, -1 when the whole range was. ]]
-- @include _coll
local refused = refuse_kind('list')
if refused then
  return refused
end
local len = length()
local reply = {1, VER, EXP, len, -1}
local start, stop = tonumber(ARGV[1]), tonumber(ARGV[2])
if start < 0 then
  start = math.max(len + start, 0)
end
if stop < 0 then
  stop = len + stop
end
stop = math.min(stop, len - 1)
if start > stop then
  return reply
end
local last = math.min(stop, start + tonumber(ARGV[3]) - 1)
-- Read in small chunks, so that a page of large values stops at the byte budget without all of
-- them passing through the script's memory.
local budget, bytes, position = tonumber(ARGV[4]), 0, start
while position <= last do
  local chunk = redis.call('LRANGE', DATA, position, math.min(position + 7, last))
  for i = 1, #chunk do
    local size = #chunk[i] + 8
    if position > start and bytes + size > budget then
      reply[5] = position
      return reply
    end
    bytes = bytes + size
    reply[#reply + 1] = chunk[i]
    position = position + 1
  end
end
if last < stop then
  reply[5] = last + 1
end
return reply
