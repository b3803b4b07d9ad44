--[[ A key prefix's current generation, read to check an entry under it on a Get (see prefixes.py).
  KEYS[1] prefix key  coord:<tenant>:cache:prefix:{<prefix>}  STRING  its generation (decimal)
  Returns the generation (decimal string), or false (nil to the caller) when the prefix was never
  invalidated (or its key expired). Writes nothing. ]]
return redis.call('GET', KEYS[1])
