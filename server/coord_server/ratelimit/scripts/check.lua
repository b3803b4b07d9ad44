--[[ Decide one or more rate limit descriptors atomically, and consume from them.
  KEYS[i]  state of descriptor i: coord:<tenant>:ratelimit:{<scope>}:<algo letter>:<key>
           (all KEYS share the one {<scope>} hash tag; no two KEYS are equal)
  ARGV[1]  flags: 1 = dry run (write nothing), 2 = independent mode (else all-or-nothing)
  ARGV[2 + 6(i-1) ..] per descriptor i, six integers:
           algo (1 token bucket/GCRA | 2 sliding window counter | 3 sliding log | 4 fixed window),
           limit, period us, burst, cost, emission interval us (token bucket only, else 0)
  Returns {now_us, then per descriptor: allowed 0|1, consumed 0|1, remaining, reset_after_us, retry_after_us}.
  All values are integers. The caller guarantees 1 <= cost <= capacity and sane bounds, so a denial
  always has a finite retry_after.
  Phase 1 reads every descriptor and plans its write; phase 2 writes only what is consumed: nothing
  on a dry run, every allowed descriptor in independent mode, all or none in all-or-nothing mode.
  Clock: Redis TIME in microseconds (exact in a Lua double until the year 2255). Every written key gets
  a PEXPIRE that ends when its state is back to "nothing consumed". ]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local flags = tonumber(ARGV[1])
local dry = flags % 2 == 1
local independent = math.floor(flags / 2) % 2 == 1

local function fmt(n)
  return string.format('%.0f', n)
end

local function ms_ceil(us)
  local ms = math.ceil(us / 1000)
  if ms < 1 then ms = 1 end
  return ms
end

-- Each decide_* returns a plan: rem0 and reset0, the remaining and reset before consuming, then
-- allow(p, ...) or deny(p, ...) decides it.

-- p is allowed: rem1 and reset1 are the remaining and reset after consuming, write consumes.
local function allow(p, rem1, reset1, write)
  p.allowed, p.rem1, p.reset1, p.write = true, rem1, reset1, write
  return p
end

-- p is denied: it could be consumed in retry us at the earliest.
local function deny(p, retry)
  p.allowed, p.retry = false, retry
  return p
end

local function decide_gcra(key, limit, period, burst, cost, interval)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local cap = burst * interval
  local new_tat = tat + cost * interval
  local allow_at = new_tat - cap
  local p = {
    rem0 = math.floor((now + cap - tat) / interval),
    reset0 = tat - now,
  }
  if allow_at <= now then
    return allow(p, math.floor((now + cap - new_tat) / interval), new_tat - now, function()
      redis.call('SET', key, fmt(new_tat), 'PX', ms_ceil(new_tat - now))
    end)
  end
  return deny(p, allow_at - now)
end

local function decide_fixed(key, limit, period, cost)
  local win = math.floor(now / period)
  local h = redis.call('HMGET', key, 'w', 'c')
  local c = 0
  if tonumber(h[1]) == win then c = tonumber(h[2]) end
  local ends = (win + 1) * period
  local p = { rem0 = limit - c, reset0 = 0 }
  if c > 0 then p.reset0 = ends - now end
  if c + cost <= limit then
    return allow(p, limit - c - cost, ends - now, function()
      redis.call('HSET', key, 'w', fmt(win), 'c', fmt(c + cost))
      redis.call('PEXPIRE', key, ms_ceil(ends - now))
    end)
  end
  return deny(p, ends - now)
end

local function decide_sliding(key, limit, period, cost)
  local win = math.floor(now / period)
  local start = win * period
  local h = redis.call('HMGET', key, 'w', 'c', 'p')
  local w = tonumber(h[1])
  local c, prev = 0, 0
  if w == win then
    c, prev = tonumber(h[2]), tonumber(h[3])
  elseif w == win - 1 then
    prev = tonumber(h[2])
  end
  local weight = (period - (now - start)) / period
  local est = prev * weight + c
  local function reset_of(count)
    if count > 0 then return start + 2 * period - now end
    if prev > 0 then return start + period - now end
    return 0
  end
  local p = { rem0 = math.max(0, math.floor(limit - est)), reset0 = reset_of(c) }
  if est + cost <= limit then
    return allow(p, math.max(0, math.floor(limit - est - cost)), reset_of(c + cost), function()
      redis.call('HSET', key, 'w', fmt(win), 'c', fmt(c + cost), 'p', fmt(prev))
      redis.call('PEXPIRE', key, ms_ceil(start + 2 * period - now))
    end)
  end
  local at
  if c + cost <= limit then
    -- This window can take it once the previous window's weight has decayed enough.
    at = start + period - (limit - c - cost) * period / prev
  else
    -- Only the next window can: its previous count is c, decaying from its start.
    at = start + 2 * period - (limit - cost) * period / c
  end
  return deny(p, math.max(1, math.ceil(at - now)))
end

local function decide_log(key, limit, period, cost)
  local floor = fmt(now - period)
  local cnt = redis.call('ZCOUNT', key, '(' .. floor, '+inf')
  local p = { rem0 = limit - cnt, reset0 = 0 }
  if cnt > 0 then
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    p.reset0 = tonumber(newest[2]) + period - now
  end
  if cnt + cost <= limit then
    return allow(p, limit - cnt - cost, period, function()
      redis.call('ZREMRANGEBYSCORE', key, '-inf', floor)
      local stamp = fmt(now)
      local args = {}
      for j = 1, cost do
        args[#args + 1] = stamp
        args[#args + 1] = stamp .. ':' .. (cnt + j)
      end
      redis.call('ZADD', key, unpack(args))
      redis.call('PEXPIRE', key, ms_ceil(period))
    end)
  end
  -- The (cnt + cost - limit)-th oldest live entry must leave the window first.
  local k = cnt + cost - limit
  local r = redis.call('ZRANGEBYSCORE', key, '(' .. floor, '+inf', 'WITHSCORES', 'LIMIT', k - 1, 1)
  return deny(p, tonumber(r[2]) + period - now)
end

local plans = {}
local all_allowed = true
for i = 1, #KEYS do
  local b = 2 + 6 * (i - 1)
  local algo = tonumber(ARGV[b])
  local limit = tonumber(ARGV[b + 1])
  local period = tonumber(ARGV[b + 2])
  local burst = tonumber(ARGV[b + 3])
  local cost = tonumber(ARGV[b + 4])
  local interval = tonumber(ARGV[b + 5])
  local p
  if algo == 1 then
    p = decide_gcra(KEYS[i], limit, period, burst, cost, interval)
  elseif algo == 2 then
    p = decide_sliding(KEYS[i], limit, period, cost)
  elseif algo == 3 then
    p = decide_log(KEYS[i], limit, period, cost)
  elseif algo == 4 then
    p = decide_fixed(KEYS[i], limit, period, cost)
  else
    return redis.error_reply('ERR unknown rate limit algorithm ' .. tostring(ARGV[b]))
  end
  plans[i] = p
  if not p.allowed then all_allowed = false end
end

local out = { now }
for i = 1, #KEYS do
  local p = plans[i]
  local consume = p.allowed and not dry and (independent or all_allowed)
  if consume then
    p.write()
    out[#out + 1] = 1
    out[#out + 1] = 1
    out[#out + 1] = p.rem1
    out[#out + 1] = p.reset1
    out[#out + 1] = 0
  else
    out[#out + 1] = p.allowed and 1 or 0
    out[#out + 1] = 0
    out[#out + 1] = math.max(0, p.rem0)  -- negative only after a rule was lowered
    out[#out + 1] = math.max(0, p.reset0)
    out[#out + 1] = p.retry or 0
  end
end
return out
