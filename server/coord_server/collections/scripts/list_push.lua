--[[ Push values to one end of a list (LPUSH or RPUSH), optionally trimming the other end to a maximum
  length in the same step; all or none.
  KEYS[1..2], ARGV[1..4], reply: see _coll.lua; KEYS[3..5] the waiter queue (see _list_queue.lua).
  ARGV[5] end: 'f' front | 'b' back   ARGV[6] max length (0: none)   ARGV[7..] the values
  Returns {1, version, expire_ms, length, trimmed, wake}: trimmed counts the values the maximum length
  removed; wake is a flat list {server, waiter id, ...} of the waiting Pops that may now take a value
  (those this push made eligible; all eligible ones when dead waiters left the queue). ]]
-- @include _coll
-- @include _list_queue
local refused = refuse_kind('list') or refuse_version()
if refused then
  return refused
end
local FRONT, MAX_LEN = ARGV[5] == 'f', tonumber(ARGV[6])
local before = length()
local pushed = before + #ARGV - 6
local len = pushed
if MAX_LEN > 0 and len > MAX_LEN then
  len = MAX_LEN
end
refused = refuse_size(len)
if refused then
  return refused
end
-- In slices, so that no batch size can overflow Lua's stack; the order is that of one LPUSH/RPUSH.
for i = 7, #ARGV, 512 do
  local last = math.min(i + 511, #ARGV)
  if FRONT then
    redis.call('LPUSH', DATA, unpack(ARGV, i, last))
  else
    redis.call('RPUSH', DATA, unpack(ARGV, i, last))
  end
end
if len < pushed then
  if FRONT then
    redis.call('LTRIM', DATA, 0, len - 1)
  else
    redis.call('LTRIM', DATA, -len, -1)
  end
end
commit('list', len, true)
local wake
if purge_waiters() > 0 then
  wake = eligible_waiters()
else
  local waiting = redis.call('ZCARD', Q)
  wake = waiters_between(math.min(waiting, before), math.min(waiting, len))
end
expire_queue()
return {1, VER, EXP, len, pushed - len, wake}
