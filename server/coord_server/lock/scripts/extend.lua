--[[ Give a grant a new TTL counted from now, owner-checked by its lock token. With resume, revive an
  expired grant with its own fencing token, but only if no other grant happened since (the stored
  newest fence is still this grant's), it fits, and nobody waits.
  KEYS: the seven lock keys (see _lib.lua).
  ARGV[1] history ms   ARGV[2] lock token   ARGV[3] ttl ms   ARGV[4] 1 = resume an expired grant
  Returns {outcome, fence, expiry_ms, now_ms, wake}: outcome 'EXTENDED' | 'RESUMED' | 'EXPIRED' |
  'RELEASED' | 'NOT_HELD' | 'HELD_BY_OTHER' (fence and expiry are 0 unless EXTENDED or RESUMED). ]]
-- @include _lib
local TOKEN, TTL, RESUME = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local changed = purge()
local rec = redis.call('HGET', D, TOKEN)
local outcome, fence, expiry = nil, '0', 0
if rec then
  local state, mode, limit, f = string.match(rec, '^(%a)|(%a)|(%d+)|(%d+)|')
  if state == 'H' then
    outcome = 'EXTENDED'
  elseif state == 'E' and RESUME == '1' and f == redis.call('GET', FENCE)
      and redis.call('ZCARD', Q) == 0 then
    local n, excl = holder_state()
    if fits(mode, tonumber(limit), n, excl) then
      outcome = 'RESUMED'
      redis.call('HSET', D, TOKEN, 'H' .. string.sub(rec, 2))
      redis.call('ZREM', X, TOKEN)
    end
  end
  if outcome then
    fence, expiry = f, NOW + TTL
    redis.call('ZADD', H, expiry, TOKEN)
    changed = changed + 1
  elseif state == 'R' then
    outcome = 'RELEASED'
  else
    outcome = 'EXPIRED'
  end
else
  outcome = unknown_token()
end
return {outcome, fence, expiry, NOW, settle(changed)}
