--[[ A waiter gives up: leave the queue at once. If a grant to its token raced with the give-up (the
  grant was made but its answer never reached the waiter), that grant is released too.
  KEYS: the seven lock keys (see _lib.lua).   ARGV[1] history ms   ARGV[2] waiter id   ARGV[3] lock token
  Returns {released (1 if a raced grant was released), wake}. ]]
-- @include _lib
local WID, TOKEN = ARGV[2], ARGV[3]
local changed = purge()
changed = changed + redis.call('ZREM', Q, WID)
redis.call('ZREM', QX, WID)
redis.call('HDEL', QD, WID)
local released = 0
if end_grant(TOKEN, 'R') then
  released = 1
  changed = changed + 1
end
return {released, settle(changed)}
