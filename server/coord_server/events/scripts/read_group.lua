--[[ Deliver a group's next new events to one of its consumers (XREADGROUP ... >), saying where the
  group stood before, so that the caller can tell whether retention removed events it never read.
  KEYS[1] stream  coord:<tenant>:events:{<topic>}
  ARGV[1] group   ARGV[2] consumer   ARGV[3] count (> 0)
  Returns {entries, last_delivered, first_id, lag, length}: entries as XREADGROUP returns them for the
  stream ({id, {field, value, ...}} oldest first; {} when none); last_delivered is the group's last
  delivered id before this read; first_id the id of the oldest stored entry ('' when none is stored);
  lag the group's count of entries added but not yet delivered to it, before this read (-1 where
  Redis can't tell: before 7.0, or after XDEL in that range); length the stream's XLEN then. Trimming
  removes the oldest entries, so a lag above the length counts undelivered entries it removed.
  An error reply starting NOGROUP when the stream or the group does not exist.
  Writes what XREADGROUP writes (the group's position, the consumer's pending entries), nothing else;
  atomic, so no other consumer's read lands between the position and the read. ]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOGROUP the topic has no stream (it expired or was deleted)')
end
local last, lag = nil, -1
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, delivered, behind = nil, nil, nil
  for i = 1, #group, 2 do
    if group[i] == 'name' then
      name = group[i + 1]
    elseif group[i] == 'last-delivered-id' then
      delivered = group[i + 1]
    elseif group[i] == 'lag' then
      behind = group[i + 1]  -- false (a nil reply) when Redis can't tell
    end
  end
  if name == ARGV[1] then
    last = delivered
    if type(behind) == 'number' then
      lag = behind
    end
    break
  end
end
local length = redis.call('XLEN', KEYS[1])
if not last then
  return redis.error_reply('NOGROUP no such consumer group')
end
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first_id = ''
if oldest[1] then
  first_id = oldest[1][1]
end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
local entries = {}
if read and read[1] then
  entries = read[1][2]
end
return {entries, last, first_id, lag, length}
