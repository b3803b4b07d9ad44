--[[ Add a signed 64-bit delta to an integer entry, creating it from 0 (with the given TTL) if absent.
  KEYS[1] entry  coord:<tenant>:cache:{<key>}   KEYS[2] tombstone  coord:<tenant>:cache:{<key>}:tomb
  (layout of both: _entry.lua)   KEYS[3..6] the key's fill lease and its waiter queue (see _lease.lua)
  ARGV[1] delta (decimal int64)   ARGV[2] ttl ms for a new entry (> 0)
  ARGV[3] invalidation channel ('' = none): the write publishes '<version> <KEYS[1]>' there
  Returns {1, value (decimal string, exact int64), version, created 0|1, expire_ms, wake}
        | {-1} value is not an integer | {-2} result would overflow int64.  Nothing is written on -1/-2.
  The value must be what Redis' INCRBY accepts: decimal, no sign but '-', no leading zero or blank,
  within int64; the sum is exact (decimal digits in two parts below 2^53, never one double).
  An existing entry keeps its expiry, stale grace, compute time and tags; one past its expiry (kept
  for its stale grace) counts as absent, as does a tombstone, whose version and fences carry on.
  A stored Increment ends the key's fill lease as a stored Set does: wake lists every waiting
  GetOrLease call as a flat list {server, waiter id, ...} (they find the value), {} when none. ]]
-- @include _lease
-- @include _entry
local BASE = 10000000000 -- 1e10: an int64's magnitude is hi * BASE + lo, both exact as doubles
local MAX_HI, MAX_LO = 922337203, 6854775807 -- 2^63 - 1; the most negative value's lo is one more

-- {negative, hi, lo} of a decimal int64 as INCRBY parses it, or nil.
local function int64(s)
  if type(s) ~= 'string' or #s == 0 or #s > 20 then return nil end
  local negative = string.sub(s, 1, 1) == '-'
  local digits = s
  if negative then digits = string.sub(s, 2) end
  if digits ~= '0' and not string.find(digits, '^[1-9]%d*$') then return nil end
  if negative and digits == '0' then return nil end
  if #digits > 19 then return nil end
  local hi = tonumber(string.sub(digits, 1, -11)) or 0
  local lo = tonumber(string.sub(digits, -10))
  local max_lo = MAX_LO
  if negative then max_lo = MAX_LO + 1 end
  if hi > MAX_HI or (hi == MAX_HI and lo > max_lo) then return nil end
  return {negative, hi, lo}
end

-- a + b as a decimal string, or nil when it leaves int64.
local function add(a, b)
  local neg, hi, lo
  if a[1] == b[1] then
    neg, hi, lo = a[1], a[2] + b[2], a[3] + b[3]
    if lo >= BASE then hi, lo = hi + 1, lo - BASE end
  else
    local big, small = a, b
    if b[2] > a[2] or (b[2] == a[2] and b[3] > a[3]) then big, small = b, a end
    neg, hi, lo = big[1], big[2] - small[2], big[3] - small[3]
    if lo < 0 then hi, lo = hi - 1, lo + BASE end
  end
  if hi == 0 and lo == 0 then return '0' end
  local max_lo = MAX_LO
  if neg then max_lo = MAX_LO + 1 end
  if hi > MAX_HI or (hi == MAX_HI and lo > max_lo) then return nil end
  local text
  if hi > 0 then
    text = string.format('%.0f%010.0f', hi, lo)
  else
    text = string.format('%.0f', lo)
  end
  if neg then text = '-' .. text end
  return text
end

local delta, ttl, channel = int64(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if not delta or not ttl or ttl < 1 or not channel then
  return redis.error_reply('ERR incr: needs a decimal int64 delta, ttl ms >= 1, channel')
end
local now_ms, now_us = e_clock()
local e = entry_read(KEYS[1], true)
if e and e.old and not e.value then e = nil end
local live = e and not entry_stale(e, now_ms)
local base = {false, 0, 0}
if live then
  base = int64(e.value)
  if not base then return {-1} end
end
local value = add(base, delta)
if not value then return {-2} end
local prev, tomb = e, nil
if not e then
  tomb = entry_read(KEYS[2], false)
  prev = tomb
end
local new = {ver = math.max(now_us, (prev and prev.ver or 0) + 1), fences = prev and prev.fences}
local created = 0
if live then
  new.x, new.grace, new.cost, new.tags = e.x, e.grace, e.cost, e.tags
else
  created = 1
  new.x = now_ms + ttl
end
entry_write(KEYS[1], new, value)
if tomb then
  redis.call('DEL', KEYS[2])
end
if channel ~= '' then
  redis.call('PUBLISH', channel, string.format('%.0f', new.ver) .. ' ' .. KEYS[1])
end
return {1, value, new.ver, created, new.x, lease_end(true)}
