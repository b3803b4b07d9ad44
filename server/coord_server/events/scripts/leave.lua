--[[ A consumer's Consume stream ended: take it out of its group, with up to ARGV[4] other consumers of
  the group that hold nothing and have been idle for at least ARGV[3] ms (those whose streams ended
  while they still held events, claimed since by others), so that a group's consumer list does not
  grow with every stream that ever joined it.
  KEYS[1] stream  coord:<tenant>:events:{<topic>}
  ARGV[1] group   ARGV[2] consumer   ARGV[3] idle ms (the stream's ack timeout)   ARGV[4] most others
  A consumer that still has pending events is kept (XGROUP DELCONSUMER would drop them from the
  group's pending list: they could never be claimed); deleting one that holds nothing loses nothing,
  and a live consumer deleted for being idle is made again by its next read.
  Returns the number of consumers deleted (0 when the stream or the group is gone). ]]
if #KEYS < 1 or #ARGV < 4 then
  return redis.error_reply('ERR leave.lua needs 1 key and 4 arguments')
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then
  return 0  -- NOGROUP: nothing left to take out
end
local idle_ms, others, deleted = tonumber(ARGV[3]), tonumber(ARGV[4]), 0
for _, consumer in ipairs(consumers) do
  local name, pending, idle = nil, nil, 0
  for i = 1, #consumer, 2 do
    if consumer[i] == 'name' then
      name = consumer[i + 1]
    elseif consumer[i] == 'pending' then
      pending = consumer[i + 1]
    elseif consumer[i] == 'idle' then
      idle = consumer[i + 1]
    end
  end
  if pending == 0 then
    if name == ARGV[2] then
      deleted = deleted + redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    elseif others > 0 and idle >= idle_ms then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
      others = others - 1
      deleted = deleted + 1
    end
  end
end
return deleted
