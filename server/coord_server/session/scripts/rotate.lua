--[[ Give a live session a new token; the old one keeps working until the end of its grace.
  KEYS[1] records  coord:<tenant>:session:{b<n>}:m   HASH  session id -> msgpack record
  KEYS[2] attrs    coord:<tenant>:session:{b<n>}:a   HASH  session id -> msgpack {name = bytes}
  KEYS[3] ends     coord:<tenant>:session:{b<n>}:x   ZSET  session id -> end ms
  ARGV[1] session id   ARGV[2] sha256(old token) hex   ARGV[3] sha256(new token) hex   ARGV[4] grace ms
  ARGV[5] tombstone ms
  Returns {1, subject, version, created, last, idle ms, absolute at, ip, ua, label, grace until}
        | {0, reason} (as validate.lua; 6 when the token is itself a rotated-out one).
  Only the current token rotates, so concurrent rotations cannot fork a session. Only the digest of the
  new token is stored; nothing a holder of the old token can read leads to the new one. The grace of
  any earlier token ends here: at most one previous token works at a time. ]]
-- @include _lib
local M, A, X = KEYS[1], KEYS[2], KEYS[3]
local sid, hash = ARGV[1], ARGV[2]

-- Only the current token rotates: a previous one, even within its grace, is superseded (6).
local rec, why = live_record(M, sid, hash, true)
if not rec then
  return {0, why}
end

rec.oh = rec.th
rec.gu = now + tonumber(ARGV[4])
rec.th = ARGV[3]
rec.l = now
save_live(M, A, X, sid, rec, tonumber(ARGV[5]))
return {1, rec.sub, rec.v, rec.c, rec.l, rec.i, rec.a, rec.ip, rec.ua, rec.lb, rec.gu}
