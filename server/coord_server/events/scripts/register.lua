--[[ Record topic names in the registry used by ListTopics and pattern subscriptions.
  KEYS[1] registry  coord:<tenant>:events:registry (its own slot: no hash tag)
  ARGV[1] ttl ms (the max age of events)   ARGV[2..] topic names
  Returns the number of names that were new. The registry's PEXPIRE is reset on every call, so it
  outlives every topic stream (each expires max age after its own last publish). ]]
local added = 0
for i = 2, #ARGV do
  added = added + redis.call('ZADD', KEYS[1], 0, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return added
