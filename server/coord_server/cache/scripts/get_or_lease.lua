--[[ Read a cache entry or take its fill lease. A caller that may do neither (another caller holds the
  lease, or waiters ahead of it come first) joins the key's queue of waiting calls, or stays in it
  renewing its heartbeat, in the same step: a Set can never slip between its miss and its registration.
  KEYS[1] entry  coord:<tenant>:cache:{<key>}  (layout: _entry.lua)   KEYS[2] tombstone (not read)
  KEYS[3..6] the key's fill lease and its waiter queue (see _lease.lua)
  ARGV[1] waiter id ('' when the caller does not wait)   ARGV[2] lease ttl ms (>= 1)
  ARGV[3] lease token (random, non-empty): what the lease holds when this caller gets it
  ARGV[4] waiter heartbeat ttl ms   ARGV[5] server id (where the waiter's wake-ups go)
  ARGV[6] optional, a stale version ('' or absent: none): an entry at exactly this version counts as
  missing (the server found its tags invalidated; a newer write of the key is a hit again)
  ARGV[7] optional, '1': serve a stale value (an entry past its expiry, kept for its stale grace)
  rather than count it as missing
  Returns {1, value, version, expire_ms, tags, compute_ms, wake}   a hit (the caller leaves the queue);
          tags and compute_ms as get.lua returns them
       or {3, value, version, expire_ms, tags, compute_ms, lease_expire_ms, wake}   a stale value
          (ARGV[7]); lease_expire_ms > 0 when the caller also took the lease (free, nobody waiting):
          it refreshes the value while every other caller gets the stale one at once
       or {2, lease_expire_ms, wake}                              the lease, now holding ARGV[3]
       or {0, lease_expire_ms, position, now_ms, wake}            neither
  lease_expire_ms is when the current lease ends (0: no lease, the waiters ahead take it first);
  position is the caller's place in the queue, 1 = first (0 when it does not wait). wake is a flat list
  {server, waiter id, ...}: the first waiter, when the lease is free (an expiry publishes nothing) or
  when a waiter just took it (so the next in line learns when it ends). ]]
-- @include _lease
-- @include _entry
local WID, TTL, TOKEN = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local WAITER_TTL, SERVER = tonumber(ARGV[4]), ARGV[5]
local STALE_VERSION, SERVE_STALE = ARGV[6] or '', ARGV[7] == '1'
if not WID or not TTL or TTL < 1 or not TOKEN or TOKEN == '' or not WAITER_TTL or not SERVER then
  return redis.error_reply('ERR get_or_lease: needs lease ttl >= 1, token, waiter ttl, server id')
end
local e = entry_read(KEYS[1], true)
if e and (not e.value or string.format('%.0f', e.ver) == STALE_VERSION) then
  e = nil
end
local now = nil
local stale = false
if e and e.grace > 0 then
  now = lease_clock()
  stale = entry_stale(e, now)
end
if e and (not stale or SERVE_STALE) then
  if WID ~= '' and redis.call('ZSCORE', LQ, WID) then
    lease_leave(WID)
  end
  if not stale then
    return {1, e.value, e.ver, e.x, e.tags or false, e.cost, {}}
  end
  -- Stale: the value at once, and the lease to refresh it when nobody holds it and nobody waits
  -- (else the first waiter takes it: it is woken).
  lease_purge(now)
  local lease_expire, wake = 0, {}
  if redis.call('EXISTS', LEASE) == 0 then
    if redis.call('EXISTS', LQ) == 0 then
      redis.call('SET', LEASE, TOKEN, 'PX', TTL)
      lease_expire = now + TTL
    else
      wake = lease_waiters(0, 0)
    end
  end
  return {3, e.value, e.ver, e.x, e.tags or false, e.cost, lease_expire, wake}
end
now = now or lease_clock()
lease_purge(now)
local left = redis.call('PTTL', LEASE)
local rank = false
if WID ~= '' then
  rank = redis.call('ZRANK', LQ, WID)
end
local wake = {}
if left == -2 then
  if rank == 0 or (not rank and redis.call('EXISTS', LQ) == 0) then
    redis.call('SET', LEASE, TOKEN, 'PX', TTL)
    if rank then
      lease_leave(WID)
      wake = lease_waiters(0, 0)
    end
    return {2, now + TTL, wake}
  end
  wake = lease_waiters(0, 0)
end
local position = 0
if WID ~= '' then
  lease_enqueue(WID, SERVER, now, WAITER_TTL)
  position = redis.call('ZRANK', LQ, WID) + 1
end
local expire_ms = 0
if left >= 0 then
  expire_ms = now + left
end
return {0, expire_ms, position, now, wake}
