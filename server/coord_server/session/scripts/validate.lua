--[[ Validate a token and optionally slide the session's idle expiry (throttled).
  KEYS[1] records  coord:<tenant>:session:{b<n>}:m   HASH  session id -> msgpack record
  KEYS[2] attrs    coord:<tenant>:session:{b<n>}:a   HASH  session id -> msgpack {name = bytes}
  KEYS[3] ends     coord:<tenant>:session:{b<n>}:x   ZSET  session id -> end ms
  ARGV[1] session id   ARGV[2] sha256(token) hex   ARGV[3] touch: 1 | 0   ARGV[4] touch interval ms
  (a touch writes only when the last one is at least min(interval, idle / 20) old)
  ARGV[5] tombstone ms   ARGV[6] attributes wanted: 0 none | 1 all | 2 the names in ARGV[7..]
  Returns {0, reason}: 1 unknown | 2 idle expired | 3 absolute expired | 4 revoked | 5 evicted | 6 superseded
        | {1, subject, version, created, last, idle ms, absolute at, ip, ua, label, {name, value, ...}}
  A token whose digest matches neither the current nor the previous token of the record is unknown,
  whatever state the session is in: a guessed token learns nothing. ]]
-- @include _lib
local M, A, X = KEYS[1], KEYS[2], KEYS[3]
local sid, hash = ARGV[1], ARGV[2]

local rec, why = live_record(M, sid, hash)
if not rec then
  return {0, why}
end

if ARGV[3] == '1' and now - rec.l >= math.min(tonumber(ARGV[4]), math.floor(rec.i / 20)) then
  rec.l = now
  save_live(M, A, X, sid, rec, tonumber(ARGV[5]))
end

local out = {}
if ARGV[6] ~= '0' then
  local packed = redis.call('HGET', A, sid)
  if packed then
    local attrs = cmsgpack.unpack(packed)
    if ARGV[6] == '1' then
      for name, value in pairs(attrs) do
        out[#out + 1] = name
        out[#out + 1] = value
      end
    else
      for i = 7, #ARGV do
        local value = attrs[ARGV[i]]
        if value then
          out[#out + 1] = ARGV[i]
          out[#out + 1] = value
        end
      end
    end
  end
end
return {1, rec.sub, rec.v, rec.c, rec.l, rec.i, rec.a, rec.ip, rec.ua, rec.lb, out}
