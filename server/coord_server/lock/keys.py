"""Every Redis key and channel of the Lock service, with its hash tag.

All keys of one lock share the tag ``{<name>}``, so every lock script runs on Redis Cluster:

``coord:<tenant>:lock:{<name>}:h``      ZSET   live grants: lock token -> expiry (ms)
``coord:<tenant>:lock:{<name>}:d``      HASH   lock token -> "state|mode|limit|fence|owner"
``coord:<tenant>:lock:{<name>}:x``      ZSET   ended grants still remembered -> end time (ms)
``coord:<tenant>:lock:{<name>}:q``      ZSET   FIFO queue: waiter id -> ticket
``coord:<tenant>:lock:{<name>}:qx``     ZSET   waiter id -> heartbeat deadline (ms)
``coord:<tenant>:lock:{<name>}:qd``     HASH   waiter id -> "mode|limit|woken|server|owner"
``coord:<tenant>:lock:{<name>}:fence``  STRING newest fencing token

Every key expires. The grant keys expire with their last grant plus the history window, the queue
keys with their last waiter's heartbeat deadline. The fence counter lives as long as the grant keys
and at least a day (``FENCE_MIN_TTL`` in ``_lib.lua``), renewed whenever they are, so a lock name used
once costs nothing forever. Its expiry cannot break fencing: a new token is at least the Redis time in
microseconds, which is a day past every earlier token once the counter is gone, unless the Redis
clock went back by more than that (docs/lock.md, "Fencing tokens").

Wake-up channel (pub/sub, not a key): ``coord:<tenant>:lock:wake:<server id>``.
"""

from __future__ import annotations

from ..keys import hash_tag, service_prefix

FENCE_SUFFIX = ":fence"
SUFFIXES = (":h", ":d", ":x", ":q", ":qx", ":qd", FENCE_SUFFIX)


class LockKeys:
    def __init__(self, tenant: str) -> None:
        self._prefix = service_prefix(tenant, "lock")

    def all(self, name: str) -> list[str]:
        """The seven keys every lock script takes, in the order of ``_lib.lua``."""
        base = self._prefix + hash_tag(name)
        return [base + suffix for suffix in SUFFIXES]

    def wake_channel(self, server_id: str) -> str:
        return f"{self._prefix}wake:{server_id}"
