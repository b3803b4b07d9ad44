"""Every Redis key the Cache service writes, with its hash tag.

``coord:<tenant>:cache:{<key>}``        HASH   v = value bytes, ver = version (decimal); PEXPIRE = TTL
``coord:<tenant>:cache:{<key>}:tomb``   STRING last version of a deleted entry; PX = tombstone TTL
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
