"""Every Redis key the Cache service writes, with its hash tag.

``coord:<tenant>:cache:{<key>}``        HASH   v = value bytes, ver = version (decimal), x = expiry (Unix ms),
                                               f:<lock> = highest fencing token accepted for that lock,
                                               t = tags and their generations (tagged entries only);
                                               PEXPIREAT = x
``coord:<tenant>:cache:{<key>}:tomb``   HASH   a deleted entry: the entry's hash without v (renamed by
                                               delete.lua, so ver and the f:<lock> fences survive);
                                               PEXPIRE = tombstone TTL. Set and Incr rename it back.
``coord:<tenant>:cache:{<key>}:lease``  STRING the token of the key's fill lease (GetOrLease); PX = the
                                               lease's TTL. A stored Set or a Delete ends it.
``coord:<tenant>:cache:{<key>}:lq``     ZSET   GetOrLease calls waiting for the fill, first come first
                                               served: waiter id -> ticket
``coord:<tenant>:cache:{<key>}:lqx``    ZSET   waiter id -> heartbeat deadline (Unix ms)
``coord:<tenant>:cache:{<key>}:lqd``    HASH   waiter id -> id of the Coord server it waits on
                                               (the three expire at their last waiter's deadline)

``coord:<tenant>:cache:tag:{<tag>}``    STRING a tag's generation (decimal, tags.py); PX = COORD_MAX_TTL plus
                                               a margin, renewed by every Set that tags an entry with it

All keys of one cache key share its hash tag, so each script runs on one Cluster slot. A tag's key has
its own (the tag's): a tagged Set or Get reads its tags' generations in separate scripts.

Invalidation channel (pub/sub, not a key): ``coord:<tenant>:cache:inv``; every write publishes
``<version> <entry key>`` on it (version 0: deleted) unless COORD_CACHE_INVALIDATIONS is off, and
InvalidateTags publishes ``flush <reason>`` (:data:`FLUSH`): every near cache drops everything.

Lease wake-up channel (pub/sub, not a key): ``coord:<tenant>:cache:wake:<server id>``.
"""

from __future__ import annotations

from ..keys import hash_tag, service_prefix, unescape_tag

# The lease and its waiter queue, in the order of _lease.lua's KEYS[3..6].
LEASE_SUFFIXES = (":lease", ":lq", ":lqx", ":lqd")

# The first word of an invalidation message that tells every watcher to drop everything; the rest of
# the message is the reason (what InvalidateTags publishes: its entries' keys are not known).
FLUSH = "flush"


class CacheKeys:
    def __init__(self, tenant: str) -> None:
        self._prefix = service_prefix(tenant, "cache")

    def entry(self, key: str) -> str:
        return self._prefix + hash_tag(key)

    def tag(self, tag: str) -> str:
        """A tag's generation (its own hash tag: tags live on other slots than the entries)."""
        return self._prefix + "tag:" + hash_tag(tag)

    def invalidations(self) -> str:
        """The channel every write publishes its invalidation on (cache writes of this tenant)."""
        return self._prefix + "inv"

    def key_of(self, entry: str) -> str | None:
        """The user key of an entry's Redis key (what an invalidation names), or None for another key."""
        if not entry.startswith(self._prefix + "{") or not entry.endswith("}"):
            return None
        return unescape_tag(entry[len(self._prefix) + 1 : -1])

    def both(self, key: str) -> tuple[str, str]:
        entry = self.entry(key)
        return entry, entry + ":tomb"

    def all(self, key: str) -> list[str]:
        """The entry, its tombstone, then its lease and the lease's waiter queue (``_lease.lua``):
        the six keys of set.lua, delete.lua and the lease scripts."""
        entry = self.entry(key)
        return [entry, entry + ":tomb", *(entry + suffix for suffix in LEASE_SUFFIXES)]

    def wake_channel(self, server_id: str) -> str:
        """Where a Coord server hears that its waiting GetOrLease calls may go on."""
        return f"{self._prefix}wake:{server_id}"
