"""The Lock service: :class:`LockAPI` (sync) and :class:`AsyncLockAPI` (asyncio).

One module per concern, the twins sharing everything but the waiting: :mod:`.models` (results,
errors), :mod:`._codec` (requests and parsing), :mod:`._lease` (the Hold's lease state machine),
:mod:`._api` (the methods that send nothing themselves), :mod:`.sync` and :mod:`.aio`. Durations
are seconds (``float``) or ``timedelta``; times are timezone-aware ``datetime`` values in UTC, by
the Redis server's clock. See :mod:`.sync` for examples.

Retries: Acquire, Extend and Hold are never retried (a second attempt could make a second grant or
report something else); Release (idempotent with its token) and Describe are retried on UNAVAILABLE.
"""

from .._convert import Seconds
from ._codec import SERVICE
from ._lease import HEARTBEAT_FRACTION
from .aio import AsyncAcquired, AsyncHold, AsyncLease, AsyncLockAPI
from .models import (
    AcquireResult,
    ExtendOutcome,
    ExtendResult,
    Grant,
    Holder,
    LockInfo,
    LockLost,
    LockNotAcquired,
    LostCallback,
    Mode,
    ReleaseOutcome,
    ReleaseResult,
)
from .sync import Acquired, Hold, Lease, LockAPI

__all__ = [
    "HEARTBEAT_FRACTION",
    "SERVICE",
    "AcquireResult",
    "Acquired",
    "AsyncAcquired",
    "AsyncHold",
    "AsyncLease",
    "AsyncLockAPI",
    "ExtendOutcome",
    "ExtendResult",
    "Grant",
    "Hold",
    "Holder",
    "Lease",
    "LockAPI",
    "LockInfo",
    "LockLost",
    "LockNotAcquired",
    "LostCallback",
    "Mode",
    "ReleaseOutcome",
    "ReleaseResult",
    "Seconds",
]
