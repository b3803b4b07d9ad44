--[[ Decide every limited descriptor of one Envoy ShouldRateLimit request atomically.
  KEYS[k]  one distinct counter: coord:<tenant>:envoy:{<domain>}:<f|g|s><unit seconds>:<entries>
           (every KEYS shares the request's {<domain>} hash tag; no two KEYS are equal)
  ARGV[2 + 7(i-1) ..] per descriptor i, seven integers: index k of its counter in KEYS, algorithm
           (1 GCRA | 2 sliding window counter | 4 fixed window), limit (requests per unit, >= 1 but for
           the fixed window), unit us, emission interval us (GCRA, else 0), hits, mode (0 enforced |
           1 shadow_mode | 2 quota_mode)
  ARGV[1]  the number of descriptors
  Returns {now_us, then per descriptor: over 0|1, remaining, reset_us}.
  A descriptor is over when its hits do not fit in its limit now. The request is denied when an
  enforced descriptor is over, or when it has quota descriptors and every one of them is over; a
  denied request writes nothing. An allowed request consumes the hits of every descriptor that fits
  (shadow and quota descriptors that are over consume nothing). Descriptors sharing a counter are
  decided in order, each seeing the hits of the earlier ones that fit. The remaining and reset of a
  descriptor that fits are after its hits when the request is allowed, before them when it is denied.
  Fixed windows are aligned to the unit (envoyproxy/ratelimit's windows); every written key gets a
  PEXPIRE that ends when its state is back to "nothing consumed". Clock: Redis TIME in microseconds. ]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])

local function fmt(x)
  return string.format('%.0f', x)
end

local function ms_ceil(us)
  local ms = math.ceil(us / 1000)
  if ms < 1 then ms = 1 end
  return ms
end

-- The state of counter k as this request sees it: loaded once, then updated by each descriptor
-- that fits; written at the end only when the request is allowed and something was consumed.
local states = {}

local function load(k, algo, period)
  local s = states[k]
  if s then return s end
  if algo == 1 then
    local tat = tonumber(redis.call('GET', KEYS[k]) or '0')
    if tat < now then tat = now end
    s = { tat = tat }
  elseif algo == 4 then
    local win = math.floor(now / period)
    local h = redis.call('HMGET', KEYS[k], 'w', 'c')
    local c = 0
    if tonumber(h[1]) == win then c = tonumber(h[2]) end
    s = { win = win, c = c, ends = (win + 1) * period }
  else
    local win = math.floor(now / period)
    local h = redis.call('HMGET', KEYS[k], 'w', 'c', 'p')
    local w = tonumber(h[1])
    local c, prev = 0, 0
    if w == win then
      c, prev = tonumber(h[2]), tonumber(h[3])
    elseif w == win - 1 then
      prev = tonumber(h[2])
    end
    s = { win = win, start = win * period, c = c, prev = prev }
  end
  s.algo, s.period, s.used = algo, period, false
  states[k] = s
  return s
end

-- Each decide_* returns: fits, remaining and reset before the hits, remaining and reset after them.
local function decide_fixed(s, limit, hits)
  local reset = s.ends - now
  if s.c + hits <= limit then
    local before = math.max(0, limit - s.c)
    s.c = s.c + hits
    return true, before, reset, limit - s.c, reset
  end
  return false, 0, reset, 0, reset
end

local function decide_gcra(s, limit, interval, hits)
  local cap = limit * interval
  local before, reset0 = math.max(0, math.floor((now + cap - s.tat) / interval)), s.tat - now
  local tat = s.tat + hits * interval
  if tat - cap <= now then
    s.tat = tat
    return true, before, reset0, math.max(0, math.floor((now + cap - tat) / interval)), tat - now
  end
  return false, 0, reset0, 0, reset0
end

local function sliding_reset(s, count)
  if count > 0 then return s.start + 2 * s.period - now end
  if s.prev > 0 then return s.start + s.period - now end
  return 0
end

local function decide_sliding(s, limit, hits)
  local est = s.prev * (s.period - (now - s.start)) / s.period + s.c
  local before, reset0 = math.max(0, math.floor(limit - est)), sliding_reset(s, s.c)
  if est + hits <= limit then
    s.c = s.c + hits
    return true, before, reset0, math.max(0, math.floor(limit - est - hits)), sliding_reset(s, s.c)
  end
  return false, 0, reset0, 0, reset0
end

local plans = {}
local denied = false
local quota, quota_over = 0, 0
for i = 1, n do
  local b = 2 + 7 * (i - 1)
  local k = tonumber(ARGV[b])
  local algo = tonumber(ARGV[b + 1])
  local limit = tonumber(ARGV[b + 2])
  local period = tonumber(ARGV[b + 3])
  local interval = tonumber(ARGV[b + 4])
  local hits = tonumber(ARGV[b + 5])
  local mode = tonumber(ARGV[b + 6])
  local s = load(k, algo, period)
  local fits, rem0, reset0, rem1, reset1
  if algo == 1 then
    fits, rem0, reset0, rem1, reset1 = decide_gcra(s, limit, interval, hits)
  elseif algo == 4 then
    fits, rem0, reset0, rem1, reset1 = decide_fixed(s, limit, hits)
  elseif algo == 2 then
    fits, rem0, reset0, rem1, reset1 = decide_sliding(s, limit, hits)
  else
    return redis.error_reply('ERR unknown rate limit algorithm ' .. tostring(ARGV[b + 1]))
  end
  if fits and hits > 0 then s.used = true end
  if mode == 2 then
    quota = quota + 1
    if not fits then quota_over = quota_over + 1 end
  elseif mode == 0 and not fits then
    denied = true
  end
  plans[i] = { fits, rem0, reset0, rem1, reset1 }
end
if quota > 0 and quota_over == quota then denied = true end

if not denied then
  for k, s in pairs(states) do
    if s.used then
      if s.algo == 1 then
        redis.call('SET', KEYS[k], fmt(s.tat), 'PX', ms_ceil(s.tat - now))
      elseif s.algo == 4 then
        redis.call('HSET', KEYS[k], 'w', fmt(s.win), 'c', fmt(s.c))
        redis.call('PEXPIRE', KEYS[k], ms_ceil(s.ends - now))
      else
        redis.call('HSET', KEYS[k], 'w', fmt(s.win), 'c', fmt(s.c), 'p', fmt(s.prev))
        redis.call('PEXPIRE', KEYS[k], ms_ceil(s.start + 2 * s.period - now))
      end
    end
  end
end

local out = { now }
for i = 1, n do
  local p = plans[i]
  out[#out + 1] = p[1] and 0 or 1
  if denied then
    out[#out + 1] = p[2]
    out[#out + 1] = p[3]
  else
    out[#out + 1] = p[4]
    out[#out + 1] = p[5]
  end
end
return out
