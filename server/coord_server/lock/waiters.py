"""Wake-ups for waiting Acquire calls: the shared waiter machinery (``coord_server/waiters.py``) bound
to the lock's keys and its heartbeat script.

Lock scripts that may make a waiter eligible (a release, a grant, a give-up, an expiry they noticed)
return the waiters that may be granted now; a woken waiter re-runs the acquire script, which decides.
The lock's heartbeat (``scripts/heartbeat.lua``) takes the history window and the waiter TTL before
the waiter ids, and also hands a lock on after an expiry, which publishes nothing.
"""

from __future__ import annotations

from ..redis import RedisBackend, Script
from ..waiters import Waiter, Waiters
from .keys import LockKeys

__all__ = ["Waiter", "Waiters", "lock_waiters"]


def lock_waiters(
    redis: RedisBackend,
    keys: LockKeys,
    heartbeat: Script,
    *,
    history_ms: int,
    waiter_ttl_ms: int,
    heartbeat_interval: float,
) -> Waiters:
    """One tenant's lock waiters (wake-up channel ``coord:<tenant>:lock:wake:<server id>``)."""
    return Waiters(
        redis,
        keys,
        heartbeat,
        heartbeat_args=[history_ms, waiter_ttl_ms],
        heartbeat_interval=heartbeat_interval,
        label="lock",
    )
