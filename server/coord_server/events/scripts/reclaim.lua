--[[ Restart (extend) or shorten (nack) the ack timeout of events a consumer still holds.
  KEYS[1] stream  coord:<tenant>:events:{<topic>}
  ARGV[1] group   ARGV[2] consumer   ARGV[3] idle ms to set   ARGV[4..] event ids
  Only ids pending with this very consumer are touched: an event already redelivered to another
  consumer stays there. XCLAIM ... JUSTID leaves the delivery count unchanged.
  Returns the number of ids touched. ]]
local touched = 0
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    touched = touched + 1
  end
end
return touched
