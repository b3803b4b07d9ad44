--[[ _coll: what every collection script shares (included right after each script's header).
  KEYS[1] the collection's data key  coord:<tenant>:coll:{<name>}     a HASH, LIST, SET or ZSET
  KEYS[2] its meta hash              coord:<tenant>:coll:{<name>}:m   t kind, ver version, x expiry (Unix ms)
  Both keys are written by the same script and carry the same PEXPIREAT (= x); a collection that
  becomes empty loses both, so no key ever outlives its collection or lives without a TTL.
  Every reply starts {code, version, expire_ms, length}:
    code  1 done | 0 not applied (if_version did not match) | -1 another kind ([2] is the kind held)
          | -2 too large ([2] is the length the write would have reached)
          | -3 a read's answer would not fit in one reply ([2] is the bytes it needs).
  Writes take ARGV[1] ttl ms (> 0), ARGV[2] ttl policy (0 refresh | 1 keep), ARGV[3] if_version
  ('' for none, else decimal), ARGV[4] max elements; their own arguments start at ARGV[5].
  Versions are max(Redis TIME in us, previous + 1): strictly increasing, also across a delete and
  re-create, as long as the Redis clock does not go back. ]]
local DATA, META = KEYS[1], KEYS[2]
local clock = redis.call('TIME')
local NOW = clock[1] * 1000 + math.floor(clock[2] / 1000)
local NOW_US = clock[1] * 1000000 + clock[2]

local function num(x)
  return string.format('%.0f', x)
end

local held = redis.call('HMGET', META, 't', 'ver', 'x')
-- KIND is the kind the name holds (false when none); VER_TEXT the version exactly as stored.
local KIND, VER_TEXT = held[1], held[2] or '0'
local VER, EXP = tonumber(VER_TEXT), tonumber(held[3] or '0')

-- The number of elements the collection holds now (0 when there is none).
local function length()
  if KIND == 'map' then
    return redis.call('HLEN', DATA)
  elseif KIND == 'list' then
    return redis.call('LLEN', DATA)
  elseif KIND == 'set' then
    return redis.call('SCARD', DATA)
  elseif KIND == 'sorted_set' then
    return redis.call('ZCARD', DATA)
  end
  return 0
end

-- The reply of a call on a name holding another kind of collection, or nil when it may go on.
local function refuse_kind(kind)
  if KIND and KIND ~= kind then
    return {-1, KIND, 0, 0}
  end
  return nil
end

-- The reply of a write whose if_version does not match, or nil when it may go on.
local function refuse_version()
  if ARGV[3] ~= '' and ARGV[3] ~= VER_TEXT then
    return {0, VER, EXP, length()}
  end
  return nil
end

-- The reply of a write that would leave `would` elements, or nil when within the limit.
local function refuse_size(would)
  if would > tonumber(ARGV[4]) then
    return {-2, would, 0, 0}
  end
  return nil
end

-- After a write: the collection of `kind` holds `len` elements; `changed` says whether its elements
-- changed (a new version). Sets the TTL as the policy says, or removes both keys when it is empty.
local function commit(kind, len, changed)
  if len == 0 then
    redis.call('DEL', DATA, META)
    KIND, VER, EXP = false, 0, 0
    return
  end
  local created = not KIND
  if changed or created then
    VER = math.max(NOW_US, VER + 1)
  end
  if created or ARGV[2] ~= '1' then
    EXP = NOW + tonumber(ARGV[1])
  end
  KIND = kind
  redis.call('HSET', META, 't', kind, 'ver', num(VER), 'x', num(EXP))
  redis.call('PEXPIREAT', DATA, num(EXP))
  redis.call('PEXPIREAT', META, num(EXP))
end
