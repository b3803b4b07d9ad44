"""Every Redis key the Cache service writes, with its hash tag.

``coord:<tenant>:cache:{<key>}``        STRING a packed header, then the value (scripts/_entry.lua): flags,
                                               version (7 bytes), expiry (Unix ms, 6 bytes), and only
                                               when used: stale grace and compute time (4 bytes each),
                                               fences (each lock name and its highest token, newline-
                                               separated) and tags (field t of tags.py, with their
                                               generations); PEXPIREAT = the expiry plus the stale grace
``coord:<tenant>:cache:{<key>}:tomb``   STRING a deleted entry: its header (version, fences) without value,
                                               tags, grace or compute time; PEXPIRE = tombstone TTL.
                                               Set and Incr carry its version and fences on and DEL it.
                                               Both keys were HASHes before (v, ver, x, t, f:<lock>):
                                               those are still read until they expire, and every
                                               write turns one into the string layout.
``coord:<tenant>:cache:{<key>}:lease``  STRING the token of the key's fill lease (GetOrLease); PX = the
                                               lease's TTL. A stored Set or Increment, or a Delete,
                                               ends it.
``coord:<tenant>:cache:{<key>}:lq``     ZSET   GetOrLease calls waiting for the fill, first come first
                                               served: waiter id -> ticket
``coord:<tenant>:cache:{<key>}:lqx``    ZSET   waiter id -> heartbeat deadline (Unix ms)
``coord:<tenant>:cache:{<key>}:lqd``    HASH   waiter id -> id of the Coord server it waits on
                                               (the three expire at their last waiter's deadline)

``coord:<tenant>:cache:tag:{<tag>}``    STRING a tag's generation (decimal, tags.py); PX = COORD_MAX_TTL plus
                                               a margin, renewed by every Set that tags an entry with it
``coord:<tenant>:cache:prefix:{<p>}``   STRING a key prefix's generation (decimal, prefixes.py), made by its
                                               first InvalidatePrefix; PX = as a tag's, renewed by each
                                               InvalidatePrefix and by every Set, Increment or Touch
                                               of a key under it

All keys of one cache key share its hash tag, so each script runs on one Cluster slot. A tag's key has
its own (the tag's): a tagged Set or Get reads its tags' generations in separate scripts.

Invalidation channel (pub/sub, not a key): ``coord:<tenant>:cache:inv``; every write publishes
``<version> <entry key>`` on it (version 0: deleted) unless COORD_CACHE_INVALIDATIONS is off, and
InvalidateTags and InvalidatePrefix publish ``flush <reason>`` (:data:`FLUSH`): every near cache drops
everything.

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

    def namespace(self, prefix: str) -> str:
        """A key prefix's generation (prefixes.py): ``prefix:`` where tags have ``tag:``, so a tag
        and a prefix with the same text never share a key; its own hash tag, like a tag's."""
        return self._prefix + "prefix:" + hash_tag(prefix)

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
