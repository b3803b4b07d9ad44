--[[ Try to grant a lock; on failure optionally join (or stay in) the FIFO queue in the same step, so a
  release can never slip between a failed try and the registration of the waiter.
  KEYS: the seven lock keys (see _lib.lua).
  ARGV[1] history ms   ARGV[2] lock token (secret)   ARGV[3] waiter id   ARGV[4] mode X|S
  ARGV[5] limit (0 none)   ARGV[6] ttl ms   ARGV[7] 1 = queue when not granted, 0 = try only
  ARGV[8] waiter heartbeat ttl ms   ARGV[9] server id (for wake-ups)   ARGV[10] owner label
  Returns {1, fence, expiry_ms, now_ms, wake}                                 granted
       or {0, queue_position (0 if not queued), queue_length, now_ms, wake, holders}  not granted
  wake is a flat list {server, waiter id, ...} of waiters that may now be granted; holders is a list
  of {record, expiry} (see _lib.lua). A granted waiter leaves the queue. Fencing token =
  max(newest + 1, Redis TIME in microseconds): strictly increasing, also after a restart and after
  the counter expired (a day or more after the lock's last change, see _lib.lua). ]]
-- @include _lib
local TOKEN, WID, MODE = ARGV[2], ARGV[3], ARGV[4]
local LIMIT, TTL = tonumber(ARGV[5]), tonumber(ARGV[6])
local QUEUE, WAITER_TTL, SERVER, OWNER = ARGV[7], tonumber(ARGV[8]), ARGV[9], ARGV[10]

local changed = purge()
local queued = redis.call('ZSCORE', Q, WID)
local n, excl = holder_state()
local eligible
if queued then
  local _, _, how = walk(n, excl, function(wid) return wid ~= WID end)
  eligible = how == 'stopped'
else
  local n2, excl2, how = walk(n, excl, nil)
  eligible = how == 'end' and fits(MODE, LIMIT, n2, excl2)
end

if eligible then
  local newest = tonumber(redis.call('GET', FENCE) or '0')
  local fence = string.format('%.0f', math.max(newest + 1, NOW_US))
  redis.call('SET', FENCE, fence)
  local expiry = NOW + TTL
  redis.call('ZADD', H, expiry, TOKEN)
  redis.call('HSET', D, TOKEN, 'H|' .. MODE .. '|' .. LIMIT .. '|' .. fence .. '|' .. OWNER)
  if queued then
    redis.call('ZREM', Q, WID)
    redis.call('ZREM', QX, WID)
    redis.call('HDEL', QD, WID)
  end
  expire_grants()
  return {1, fence, expiry, NOW, wake_list(false)}
end

local position = 0
if QUEUE == '1' then
  if not queued then
    local tail = redis.call('ZRANGE', Q, -1, -1, 'WITHSCORES')
    local ticket = 1
    if #tail > 0 then
      ticket = tonumber(tail[2]) + 1
    end
    redis.call('ZADD', Q, ticket, WID)
  end
  -- (Re)written with woken = 0: a waiter that was woken but is not eligible must be woken again later.
  redis.call('HSET', QD, WID, MODE .. '|' .. LIMIT .. '|0|' .. SERVER .. '|' .. OWNER)
  redis.call('ZADD', QX, NOW + WAITER_TTL, WID)
  expire_queue()
  position = redis.call('ZRANK', Q, WID) + 1
end
local wake = settle(changed)
return {0, position, redis.call('ZCARD', Q), NOW, wake, holders(16)}
