--[[ Add members with scores to a sorted set or change their scores (ZADD), under a condition.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5] condition: '' (none) | 'NX' | 'XX' | 'GT' | 'LT'
  ARGV[6..] score, member, score, member, ... (distinct members; scores as Redis parses them, not NaN)
  Returns {1, version, expire_ms, length, added, updated}: the new members, and the members that were
  there and whose score changed. XX never adds; NX never changes; GT and LT add new members. ]]
-- @include _coll
local refused = refuse_kind('sorted_set') or refuse_version()
if refused then
  return refused
end
local condition = ARGV[5]
local before = length()
local members, seen = {}, {}
for i = 7, #ARGV, 2 do
  if not seen[ARGV[i]] then
    seen[ARGV[i]] = true
    members[#members + 1] = ARGV[i]
  end
end
-- Count the new members first, to refuse before any change.
local added = 0
if #members > 0 and condition ~= 'XX' then
  local scores = redis.call('ZMSCORE', DATA, unpack(members))
  for i = 1, #members do
    if not scores[i] then
      added = added + 1
    end
  end
end
refused = refuse_size(before + added)
if refused then
  return refused
end
local changed = 0
if #members > 0 then
  local args = {}
  if condition ~= '' then
    args[1] = condition
  end
  args[#args + 1] = 'CH'
  for i = 6, #ARGV do
    args[#args + 1] = ARGV[i]
  end
  changed = redis.call('ZADD', DATA, unpack(args))
end
commit('sorted_set', before + added, changed > 0)
return {1, VER, EXP, before + added, added, changed - added}
