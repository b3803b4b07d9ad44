--[[ Create a consumer group (and the stream, if it does not exist yet), idempotently.
  KEYS[1] stream  coord:<tenant>:events:{<topic>}
  ARGV[1] group name   ARGV[2] start: '$' (latest) or '0' (earliest)   ARGV[3] max age ms (> 0)
  Returns 1 created | 0 the group already existed.
  A stream created here gets the topic's TTL at once, so no key is ever left without one. ]]
local ok, err = pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM')
if not ok then
  if string.find(tostring(err), 'BUSYGROUP', 1, true) then
    return 0
  end
  return redis.error_reply(tostring(err))
end
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
