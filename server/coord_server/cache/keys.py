"""Every Redis key the Cache service writes, with its hash tag.

``coord:<tenant>:cache:{<key>}``        HASH   v = value bytes, ver = version (decimal), x = expiry (Unix ms),
                                               f:<lock> = highest fencing token accepted for that lock;
                                               PEXPIREAT = x
``coord:<tenant>:cache:{<key>}:tomb``   HASH   a deleted entry: the entry's hash without v (renamed by
                                               delete.lua, so ver and the f:<lock> fences survive);
                                               PEXPIRE = tombstone TTL. Set and Incr rename it back.
"""

from __future__ import annotations

from ..keys import hash_tag, service_prefix


class CacheKeys:
    def __init__(self, tenant: str) -> None:
        self._prefix = service_prefix(tenant, "cache")

    def entry(self, key: str) -> str:
        return self._prefix + hash_tag(key)

    def both(self, key: str) -> tuple[str, str]:
        entry = self.entry(key)
        return entry, entry + ":tomb"
