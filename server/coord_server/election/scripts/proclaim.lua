--[[ The leader publishes a new value, fenced by its term: only while the grant of the lock token is
  live and is the recorded leadership of that term.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV[1] history ms (unused)   ARGV[2] term   ARGV[3] lock token   ARGV[4] value
  Returns {proclaimed (1|0), revision (of the change; else the newest, '' without a log), now_ms,
  leadership} (leadership as leader.lua's). ]]
-- @include _lib
-- @include _election
local TERM, TOKEN, VALUE = ARGV[2], ARGV[3], ARGV[4]
if not VALUE then
  return redis.error_reply('ERR proclaim needs a term, a lock token and a value')
end
reconcile()
local rec = redis.call('HMGET', LEADER, 'token', 'term', 'elect')
local done, revision = 0, nil
if rec[1] == TOKEN and rec[2] == TERM then
  redis.call('HSET', LEADER, 'value', VALUE, 'update', NOW)
  revision = append(TERM, 'k', 'P', 't', TERM, 'v', VALUE, 'e', rec[3])
  done = 1
end
touch()
return {done, revision or last_revision(), NOW, leadership()}
