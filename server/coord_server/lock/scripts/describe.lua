--[[ Snapshot of one lock; writes nothing (expired grants and dead waiters are filtered, not purged).
  KEYS: the seven lock keys (see _lib.lua).   ARGV[1] history ms (unused)   ARGV[2] most holders listed
  Returns {now_ms, holder_count, queue_length, newest fence, holders} (holders: {record, expiry});
  newest fence is 0 when none was issued or the counter has expired (see _lib.lua). ]]
-- @include _lib
local count = redis.call('ZCOUNT', H, '(' .. NOW, '+inf')
local waiting = redis.call('ZCOUNT', QX, '(' .. NOW, '+inf')
return {NOW, count, waiting, redis.call('GET', FENCE) or '0', holders(tonumber(ARGV[2]))}
