--[[ Append one event to a topic stream, at most once per dedup id, and apply retention.
  KEYS[1] stream  coord:<tenant>:events:{<topic>}
  KEYS[2] (only with a dedup id) dedup key  coord:<tenant>:events:{<topic>}:dd:<dedup_id>
  ARGV[1] max length (approximate)   ARGV[2] max age ms (> 0)   ARGV[3] dedup window ms
  ARGV[4..] the entry's field/value pairs (an even number of them, at least one pair)
  Returns {id, 0} appended | {first_id, 1} duplicate of an earlier publish within the window.
  Retention: MAXLEN ~ on the XADD, then XTRIM MINID ~ (now - max age); the stream's PEXPIRE is reset
  to the max age, so a topic nobody publishes to disappears once all its events are too old. ]]
if #KEYS == 2 then
  local first = redis.call('GET', KEYS[2])
  if first then
    return {first, 1}
  end
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 4))
local min_ms = now_ms - tonumber(ARGV[2])
if min_ms > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f', min_ms) .. '-0')
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if #KEYS == 2 then
  redis.call('SET', KEYS[2], id, 'PX', ARGV[3])
end
return {id, 0}
