--[[ Drop ended sessions from a subject's index (run after a Revoke, which cannot name the index).
  KEYS[1] ends     coord:<tenant>:session:{b<n>}:x   ZSET  session id -> end ms
  KEYS[2] subject  coord:<tenant>:session:{b<n>}:u:<subject>  ZSET session id -> created ms
  Returns {live sessions left}. Only removes members, so it is safe to run at any time, any number of
  times; the index key is deleted when it becomes empty. ]]
-- @include _lib
local X, U = KEYS[1], KEYS[2]
for _, id in ipairs(redis.call('ZRANGE', U, 0, -1)) do
  local ends = redis.call('ZSCORE', X, id)
  if not ends or tonumber(ends) <= now then
    redis.call('ZREM', U, id)
  end
end
local left = redis.call('ZCARD', U)
if left == 0 then
  redis.call('DEL', U)
end
return {left}
