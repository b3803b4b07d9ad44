--[[ Publish one volatile event on the topic's Pub/Sub channel, numbered by the topic's sequence.
  KEYS[1] sequence  coord:<tenant>:events:{<topic>}:vseq
  ARGV[1] sequence ttl ms (> 0)   ARGV[2] channel  coord:<tenant>:events:{<topic>}:v
  ARGV[3] the encoded event (without its number)
  Returns {sequence, receivers}: the message sent is "<sequence>:<encoded event>"; receivers is what
  PUBLISH counted (server processes listening, not subscribers). Numbering and sending are one atomic
  step, so subscribers see numbers in order and any hole is a lost message.
  Missing arguments are an error reply before anything is written. ]]
if not (tonumber(ARGV[1]) and ARGV[2] and ARGV[3]) then
  return redis.error_reply('ERR publish_volatile needs a sequence ttl, a channel and an event')
end
local seq = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local receivers = redis.call('PUBLISH', ARGV[2], string.format('%.0f', seq) .. ':' .. ARGV[3])
return {seq, receivers}
