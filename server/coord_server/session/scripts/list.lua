--[[ List one page of a subject's live sessions, oldest first, pruning the subject index on the way.
  KEYS[1] records  coord:<tenant>:session:{b<n>}:m   HASH  session id -> msgpack record
  KEYS[2] ends     coord:<tenant>:session:{b<n>}:x   ZSET  session id -> end ms
  KEYS[3] subject  coord:<tenant>:session:{b<n>}:u:<subject>  ZSET session id -> created ms
  ARGV[1] page size   ARGV[2] cursor created ms ('' = from the start)   ARGV[3] cursor session id
  Returns {more (1|0), {{id, subject, version, created, last, idle ms, absolute at, ip, ua, label}, ...}}
  Order is the index order: created ms, then session id. A cursor whose session is still listed
  resumes right after it; one whose session has ended resumes after its creation time. ]]
-- @include _lib
local M, X, U = KEYS[1], KEYS[2], KEYS[3]
local size = tonumber(ARGV[1])

local live, created = {}, {}
local members = redis.call('ZRANGE', U, 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local id = members[i]
  local ends = redis.call('ZSCORE', X, id)
  if ends and tonumber(ends) > now then
    live[#live + 1] = id
    created[#created + 1] = tonumber(members[i + 1])
  else
    redis.call('ZREM', U, id)
  end
end
if #live == 0 then
  redis.call('DEL', U)
end

local start = 1
if ARGV[2] ~= '' then
  local after = tonumber(ARGV[2])
  start = #live + 1
  for i = 1, #live do
    if live[i] == ARGV[3] then
      start = i + 1
      break
    end
    if created[i] > after then
      start = i
      break
    end
  end
end
local rows = {}
local last = math.min(#live, start + size - 1)
for i = start, last do
  local rec = cmsgpack.unpack(redis.call('HGET', M, live[i]))
  rows[#rows + 1] = {live[i], rec.sub, rec.v, rec.c, rec.l, rec.i, rec.a, rec.ip, rec.ua, rec.lb}
end
local more = 0
if last < #live then more = 1 end
return {more, rows}
