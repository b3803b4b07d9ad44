--[[ Read one cache entry.
  KEYS[1] entry  coord:<tenant>:cache:{<key>}  (layout: _entry.lua)
  ARGV[1] optional: the most value bytes to return; a longer value is not sent, only its size
  Returns {0} when absent | {1, value, version, expire_ms, tags, compute_ms} a hit, where tags is the
  entry's field t (tags with the generations they had when it was written; false when untagged: the
  server checks a tagged hit's generations before answering it) and compute_ms the compute time its
  writer reported (0: none) | {2, value size} when the value is longer than ARGV[1].
  The expiry is the one the write recorded (the key's PEXPIREAT, less any stale grace), so every read
  reports exactly what the write returned. An entry past it, kept for its stale grace, is a miss. ]]
-- @include _entry
local most = tonumber(ARGV[1])
if most then
  -- A batch bounds its reply before it fetches: a value it cannot afford never leaves Redis.
  local size, head = entry_size(KEYS[1], most)
  if size > most then
    if head and head.grace > 0 and entry_stale(head, e_clock()) then
      return {0}  -- a stale value is no entry to a read: its size does not count
    end
    return {2, size}
  end
end
local s = redis.pcall('GET', KEYS[1])
if type(s) == 'string' and string.byte(s, 1) == 0 then
  -- The common entry, a bare header (no tags, fences, grace or compute time): read in place.
  local _, ver, x = struct.unpack('<BI7I6', s)
  return {1, string.sub(s, E_FIXED + 1), ver, x, false, 0}
end
local e = entry_of(KEYS[1], s, true)
if not e or not e.value or (e.grace > 0 and entry_stale(e, e_clock())) then
  return {0}
end
return {1, e.value, e.ver, e.x, e.tags or false, e.cost}
