--[[ Add members to a set (SADD), all or none.
  KEYS, ARGV[1..4], reply: see _coll.lua.   ARGV[5..] the members
  Returns {1, version, expire_ms, length, added}: added counts the members that were new. A set whose
  members were all there already keeps its version (its TTL still follows the policy). ]]
-- @include _coll
local refused = refuse_kind('set') or refuse_version()
if refused then
  return refused
end
local before = length()
local added = 0
if #ARGV >= 5 then
  -- Count the new members first (a member given twice counts once), to refuse before any change.
  local known = redis.call('SMISMEMBER', DATA, unpack(ARGV, 5))
  local seen = {}
  for i = 5, #ARGV do
    local member = ARGV[i]
    if not seen[member] then
      seen[member] = true
      if known[i - 4] == 0 then
        added = added + 1
      end
    end
  end
end
refused = refuse_size(before + added)
if refused then
  return refused
end
if added > 0 then
  redis.call('SADD', DATA, unpack(ARGV, 5))
end
commit('set', before + added, added > 0)
return {1, VER, EXP, before + added, added}
