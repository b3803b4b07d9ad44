--[[ _entry: how one cache entry and its tombstone are laid out in Redis, read and written.
  Included by the scripts that take KEYS[1] the entry (coord:<tenant>:cache:{<key>}) and, all but
  get.lua and touch.lua, KEYS[2] its tombstone (...:{<key>}:tomb).

  An entry is one STRING, a packed header followed by the value's bytes (a cache entry costs about
  what a plain SET PX of its value does; see docs/cache.md):
    byte  1        flags: 1 tagged, 2 fenced, 4 stale grace, 8 compute time (unknown bits: an error)
    bytes 2..8     version, unsigned little-endian (7 bytes; versions stay below 2^53)
    bytes 9..14    expiry, Unix ms (6 bytes): what reads report and honour. The key's PEXPIREAT is
                   this expiry plus the stale grace (only flag 4 makes them differ)
    then, only when their flag is set, in this order:
                   stale grace ms (4 bytes), compute time ms (4 bytes),
                   the length of the fences (4 bytes), the length of the tags (4 bytes),
                   the fences: '<lock name>\n<highest token>' pairs joined by '\n',
                   the tags: field t of tags.py, '<tag>\n<generation>' pairs joined by '\n'
    then the value, to the end of the string.
  The header's fixed part is at most 30 bytes, so one GETRANGE of E_PEEK bytes tells its length.
  A tombstone is a header of the same layout (version, fences; expiry 0, no value, no tags) under
  the tombstone key, PEXPIRE = the tombstone TTL.

  The old layout, a HASH (v value, ver version, x expiry, t tags, f:<lock> fences; the tombstone the
  same without v and t), is read until its keys expire: a read of such a key gets WRONGTYPE from the
  string commands and reads the hash instead. Every write replaces it with the string layout. ]]

local E_TAGS, E_FENCES, E_GRACE, E_COST = 1, 2, 4, 8
local E_FIXED = 14 -- flags, version, expiry: the shortest header
local E_PEEK = 64 -- bytes read to learn a header's length (its fixed part is at most 30)
local E_EXPIRY_AT = 8 -- the expiry's offset in the string (0-based, for SETRANGE)

local function e_has(flags, flag)
  return math.floor(flags / flag) % 2 == 1
end

-- Redis time: {ms, us} (Unix).
local function e_clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The header fields of s, which holds at least the header's fixed part: flags, ver, x, grace, cost,
-- and flen, tlen, at (where the fences start), hlen (the header's length; the value follows).
local function e_parse(s)
  local flags, ver, x, pos = struct.unpack('<BI7I6', s)
  if flags > 15 then
    error('cache entry: unknown layout flags ' .. flags)
  end
  local e = {flags = flags, ver = ver, x = x, grace = 0, cost = 0, flen = 0, tlen = 0}
  if e_has(flags, E_GRACE) then e.grace, pos = struct.unpack('<I4', s, pos) end
  if e_has(flags, E_COST) then e.cost, pos = struct.unpack('<I4', s, pos) end
  if e_has(flags, E_FENCES) then e.flen, pos = struct.unpack('<I4', s, pos) end
  if e_has(flags, E_TAGS) then e.tlen, pos = struct.unpack('<I4', s, pos) end
  e.at = pos
  e.hlen = pos - 1 + e.flen + e.tlen
  return e
end

-- The fences and tags of e, cut from s (which holds at least the whole header).
local function e_blobs(e, s)
  if e.flen > 0 then e.fences = string.sub(s, e.at, e.at + e.flen - 1) end
  if e.tlen > 0 then e.tags = string.sub(s, e.at + e.flen, e.hlen) end
end

-- An entry (or tombstone) of the old layout, a hash, as the string layout's fields; its value too.
local function e_old(key)
  local all = redis.call('HGETALL', key)
  local e = {old = true, flags = 0, ver = 0, x = 0, grace = 0, cost = 0}
  local fences = {}
  for i = 1, #all, 2 do
    local field, v = all[i], all[i + 1]
    if field == 'v' then e.value = v
    elseif field == 'ver' then e.ver = tonumber(v) or 0
    elseif field == 'x' then e.x = tonumber(v) or 0
    elseif field == 't' then e.tags = v
    elseif string.sub(field, 1, 2) == 'f:' then
      fences[#fences + 1] = string.sub(field, 3) .. '\n' .. v
    end
  end
  if #fences > 0 then e.fences = table.concat(fences, '\n') end
  if e.x == 0 and e.value then
    -- An entry written without field x (none of Coord's): its expiry is the key's.
    local left = redis.call('PTTL', key)
    if left > 0 then e.x = e_clock() + left end
  end
  return e
end

-- The entry or tombstone at key from s, what GET (`whole`) or a GETRANGE of E_PEEK bytes returned
-- through a protected call (pcall), or nil when there is none.
local function entry_of(key, s, whole)
  if type(s) == 'table' then
    if s.err and string.find(s.err, 'WRONGTYPE', 1, true) then
      return e_old(key)
    end
    error(s.err)
  end
  if not s or s == '' then
    return nil
  end
  local e = e_parse(s)
  if not whole and e.hlen > #s then
    s = redis.call('GETRANGE', key, 0, e.hlen - 1)
  end
  e_blobs(e, s)
  if whole then e.value = string.sub(s, e.hlen + 1) end
  return e
end

-- The entry or tombstone at key, or nil when there is none. With `whole`, e.value holds its value;
-- else only the header is read (an old-layout hash is always read whole).
local function entry_read(key, whole)
  if whole then
    return entry_of(key, redis.pcall('GET', key), true)
  end
  return entry_of(key, redis.pcall('GETRANGE', key, 0, E_PEEK - 1), false)
end

-- The size of the value at key: -1 when there is no entry. Exact whenever it is above `most`; at or
-- below it, only a bound (the caller reads the entry anyway). Second, the header's fields when they
-- had to be read to tell (else nil).
local function entry_size(key, most)
  local n = redis.pcall('STRLEN', key)
  if type(n) == 'table' then
    if n.err and string.find(n.err, 'WRONGTYPE', 1, true) then
      return redis.call('HSTRLEN', key, 'v'), nil -- an old-layout entry
    end
    error(n.err)
  end
  if n == 0 then return -1, nil end
  if n - E_FIXED <= most then return n - E_FIXED, nil end
  local e = e_parse(redis.call('GETRANGE', key, 0, E_PEEK - 1))
  return n - e.hlen, e
end

-- Whether e is past its expiry and kept only for its stale grace: a miss to every read but a
-- GetOrLease that serves stale values; a write takes it as absent (as a tombstone with a value).
local function entry_stale(e, now_ms)
  return e.grace > 0 and now_ms > e.x
end

-- The string for e (fields ver, x, and optional grace, cost, fences, tags) and `value`.
local function entry_pack(e, value)
  if (e.grace or 0) == 0 and (e.cost or 0) == 0 and (e.fences or '') == '' and (e.tags or '') == '' then
    return struct.pack('<BI7I6', 0, e.ver, e.x) .. (value or '') -- the common entry: a bare header
  end
  local flags, opt, blobs = 0, {}, {}
  if (e.grace or 0) > 0 then
    flags = flags + E_GRACE
    opt[#opt + 1] = struct.pack('<I4', e.grace)
  end
  if (e.cost or 0) > 0 then
    flags = flags + E_COST
    opt[#opt + 1] = struct.pack('<I4', e.cost)
  end
  if e.fences and e.fences ~= '' then
    flags = flags + E_FENCES
    opt[#opt + 1] = struct.pack('<I4', #e.fences)
    blobs[#blobs + 1] = e.fences
  end
  if e.tags and e.tags ~= '' then
    flags = flags + E_TAGS
    opt[#opt + 1] = struct.pack('<I4', #e.tags)
    blobs[#blobs + 1] = e.tags
  end
  local parts = {struct.pack('<BI7I6', flags, e.ver, e.x)}
  for i = 1, #opt do parts[#parts + 1] = opt[i] end
  for i = 1, #blobs do parts[#parts + 1] = blobs[i] end
  parts[#parts + 1] = value or ''
  return table.concat(parts)
end

-- Store e with `value` at key, the key expiring at e.x plus e's stale grace (replaces an old hash).
local function entry_write(key, e, value)
  redis.call('SET', key, entry_pack(e, value), 'PXAT', string.format('%.0f', e.x + (e.grace or 0)))
end

-- The highest fencing token `fences` holds for lock `name`, 0 when none.
local function fence_of(fences, name)
  if not fences then return 0 end
  local pos, n = 1, #fences
  while pos <= n do
    local nl = string.find(fences, '\n', pos, true)
    local nl2 = string.find(fences, '\n', nl + 1, true) or (n + 1)
    if string.sub(fences, pos, nl - 1) == name then
      return tonumber(string.sub(fences, nl + 1, nl2 - 1))
    end
    pos = nl2 + 1
  end
  return 0
end

-- `fences` with lock `name` at `token` (decimal), added or replaced.
local function fence_set(fences, name, token)
  local out = {}
  if fences then
    local pos, n = 1, #fences
    while pos <= n do
      local nl = string.find(fences, '\n', pos, true)
      local nl2 = string.find(fences, '\n', nl + 1, true) or (n + 1)
      if string.sub(fences, pos, nl - 1) ~= name then
        out[#out + 1] = string.sub(fences, pos, nl2 - 1)
      end
      pos = nl2 + 1
    end
  end
  out[#out + 1] = name .. '\n' .. token
  return table.concat(out, '\n')
end
