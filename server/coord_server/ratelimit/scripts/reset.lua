--[[ Clear every algorithm's state of one key, so it starts again with nothing consumed.
  KEYS[1..4] the key's state for each algorithm: coord:<tenant>:ratelimit:{<scope>}:<g|s|l|f>:<key>
  Returns the number of keys that existed and were deleted (0 to 4). ]]
return redis.call('DEL', unpack(KEYS))
