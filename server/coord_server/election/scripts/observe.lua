--[[ Where an Observe stream starts, or how it catches up: the state of the election, and the changes
  after a revision. Gives the election a log if it has none (so the revision returned is one a resume
  can start from), after logging the end of a leadership whose grant is gone.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV[1] history ms (unused)   ARGV[2] after: a revision, or '' for the state only
  ARGV[3] the most changes returned
  Returns {now_ms, revision, leadership, gap, changes}: revision is the newest one and leadership the
  state at it (as leader.lua's). With after '': gap 0 and no changes. Otherwise, when the log still
  has every change after `after` (floor <= after <= revision): gap 0 and the first changes after it,
  oldest first, as XRANGE gives them ({id, {field, value, ...}}); when it does not: gap 1, no changes. ]]
-- @include _lib
-- @include _election
local AFTER, COUNT = ARGV[2], tonumber(ARGV[3])
if not COUNT then
  return redis.error_reply('ERR observe needs a revision (or "") and a count')
end
if AFTER ~= '' and not string.match(AFTER, '^%d+-%d+$') then
  return redis.error_reply('ERR observe: the revision must be "<a>-<b>"')
end
reconcile()
open_log()
touch()
local rec = redis.call('HMGET', LEADER, 'floor', 'last')
local gap, changes = 0, {}
if AFTER ~= '' then
  if rev_before(AFTER, rec[1]) or rev_before(rec[2], AFTER) then
    gap = 1
  else
    changes = redis.call('XRANGE', LOG, '(' .. AFTER, '+', 'COUNT', COUNT)
  end
end
return {NOW, rec[2], leadership(), gap, changes}
