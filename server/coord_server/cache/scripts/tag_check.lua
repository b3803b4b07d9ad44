--[[ A tag's current generation, read to check a tagged entry on a Get (see tag_invalidate.lua).
  KEYS[1] tag key  coord:<tenant>:cache:tag:{<tag>}  STRING  the tag's generation (decimal)
  Returns the generation (decimal string), or false (nil to the caller) when the tag key is missing:
  then no entry's stored generation matches it. Writes nothing. ]]
return redis.call('GET', KEYS[1])
