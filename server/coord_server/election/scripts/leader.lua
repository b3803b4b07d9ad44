--[[ Who leads: the recorded leadership, once the end of one whose grant is gone has been logged.
  KEYS: the seven lock keys (see _lib.lua), KEYS[8] LEADER and KEYS[9] LOG (see _election.lua).
  ARGV[1] history ms (unused)
  Returns {now_ms, revision ('' when the election has no log), leadership}: leadership is
  {term, value, elect_ms, update_ms, expiry_ms}, or {} when nobody leads. ]]
-- @include _lib
-- @include _election
reconcile()
touch()
return {NOW, last_revision(), leadership()}
