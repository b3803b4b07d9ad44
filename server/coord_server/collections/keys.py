"""Every Redis key and channel of the collection services, with its hash tag.

All keys of one collection share the tag ``{<name>}``, so every script runs on one Redis Cluster slot.
Maps, lists, sets and sorted sets share one namespace per tenant (a name holds one kind at a time),
apart from the cache's (``coord:<tenant>:cache:``), so a cache key and a collection never collide:

``coord:<tenant>:coll:{<name>}``      HASH | LIST | SET | ZSET  the elements, as the plain Redis structure
``coord:<tenant>:coll:{<name>}:m``    HASH   t kind, ver version, x expiry (Unix ms)
``coord:<tenant>:coll:{<name>}:q``    ZSET   a list's waiting Pops, FIFO: waiter id -> ticket
``coord:<tenant>:coll:{<name>}:qx``   ZSET   waiter id -> heartbeat deadline (ms)
``coord:<tenant>:coll:{<name>}:qd``   HASH   waiter id -> id of the server it waits on

The first two carry the collection's TTL (PEXPIREAT, both the same); the queue keys expire with their
last waiter's heartbeat deadline. Wake-up channel (pub/sub, not a key):
``coord:<tenant>:coll:wake:<server id>``.
"""

from __future__ import annotations

from ..keys import hash_tag, service_prefix

QUEUE_SUFFIXES = (":q", ":qx", ":qd")


class CollectionKeys:
    def __init__(self, tenant: str) -> None:
        self._prefix = service_prefix(tenant, "coll")

    def both(self, name: str) -> list[str]:
        """The data key and the meta key: what every collection script takes first."""
        data = self._prefix + hash_tag(name)
        return [data, data + ":m"]

    def all(self, name: str) -> list[str]:
        """The data and meta keys and a list's three waiter queue keys, in that order."""
        data = self._prefix + hash_tag(name)
        return [data, data + ":m", *(data + suffix for suffix in QUEUE_SUFFIXES)]

    def wake_channel(self, server_id: str) -> str:
        return f"{self._prefix}wake:{server_id}"
