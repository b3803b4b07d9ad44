--[[ Take over events of a group that waited longer than the ack timeout, with their delivery counts.
  KEYS[1] stream  coord:<tenant>:events:{<topic>}
  ARGV[1] group   ARGV[2] consumer (the claimer)   ARGV[3] min idle ms (the ack timeout)   ARGV[4] count
  Returns {entries, counts}: entries as XAUTOCLAIM returns them ({id, {field, value, ...}}), counts[i]
  the delivery count of entries[i] after this claim (which counts as a delivery). Ids whose entries
  were trimmed away are dropped from the group's pending list (Redis 7 does it itself; on 6.2 this
  script acknowledges them). Writes nothing when nothing is claimable. ]]
local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local entries = {}
local counts = {}
for _, entry in ipairs(reply[2]) do
  if type(entry) == 'table' and entry[2] and type(entry[2]) == 'table' then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
    local n = 1
    if p[1] then
      n = p[1][4]
    end
    entries[#entries + 1] = entry
    counts[#counts + 1] = n
  elseif type(entry) == 'table' and entry[1] then
    redis.call('XACK', KEYS[1], ARGV[1], entry[1])
  end
end
return {entries, counts}
