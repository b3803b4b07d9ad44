--[[ Read the ranks and scores of members of a sorted set (ZRANK or ZREVRANK, and ZSCORE).
  KEYS, reply: see _coll.lua.   ARGV[1] order: 'asc' | 'desc'   ARGV[2..] the members
  Returns {1, version, expire_ms, length, rank, score as text, ...}: a pair per member, both nil for a
  member the sorted set does not hold. Ranks count from 0 in the order asked for. ]]
-- @include _coll
local refused = refuse_kind('sorted_set')
if refused then
  return refused
end
local reply = {1, VER, EXP, length()}
for i = 2, #ARGV do
  local rank
  if ARGV[1] == 'desc' then
    rank = redis.call('ZREVRANK', DATA, ARGV[i])
  else
    rank = redis.call('ZRANK', DATA, ARGV[i])
  end
  reply[#reply + 1] = rank
  if rank then
    reply[#reply + 1] = redis.call('ZSCORE', DATA, ARGV[i])
  else
    reply[#reply + 1] = false
  end
end
return reply
