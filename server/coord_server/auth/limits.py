"""Per-tenant limits, so that one tenant cannot starve the others: calls per second and open streams.

Both are counted in this process's memory, with no Redis call: a refused call costs the server almost
nothing and never reaches Redis. The price is that the bounds are per server: with N servers behind a
balancer, a tenant may make up to N times its ``calls_per_second`` and hold N times its
``max_streams`` in all. Set the limits in the auth file with that in mind.

Calls per second use GCRA (the generic cell rate algorithm, the same as Coord's token bucket rate
limits): each tenant has a theoretical arrival time ``tat``; a call at ``now`` is admitted when
``tat - now <= tolerance`` (room for ``burst`` calls at once) and moves ``tat`` one emission interval
(``1 / calls_per_second``) further; a refused call learns ``tat - now - tolerance``, the wait until
one would be admitted, and changes nothing. Every call counts once, a streaming call when it starts
(the messages of a stream are not calls).

Streams (every call with a streaming request or response) are counted from the moment the call is
admitted until it ends, however it ends: completion, an error, or cancellation by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .identity import Limits

# Tenants whose GCRA state is older than now carry no information (a fresh state is the same);
# they are dropped when this many tenants are remembered, so the table stays bounded.
_PRUNE_AT = 10_000
# Sums of float intervals drift (5 x 0.2 > 1.0): a microsecond of slack keeps a burst whole.
_EPSILON = 1e-6


class TenantLimiter:
    """The per-tenant counters of one server. Not thread-safe: used from the server's event loop."""

    __slots__ = ("_clock", "_streams", "_tat")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._streams: dict[str, int] = {}

    def admit(self, tenant: str, limits: Limits) -> float | None:
        """Count one call of ``tenant``: None when admitted, else the seconds until one would be."""
        interval = limits.interval
        if not interval:
            return None
        now = self._clock()
        tat = self._tat.get(tenant, now)
        tat = max(tat, now)
        wait = tat - now - limits.tolerance
        if wait > _EPSILON:
            return wait
        if len(self._tat) >= _PRUNE_AT and tenant not in self._tat:
            self._prune(now)
        self._tat[tenant] = tat + interval
        return None

    def open_stream(self, tenant: str, limits: Limits) -> bool:
        """Count a stream of ``tenant`` as open, or return False (nothing counted) at its limit.

        Every True must be followed by exactly one :meth:`close_stream`.
        """
        most = limits.max_streams
        count = self._streams.get(tenant, 0)
        if most is not None and count >= most:
            return False
        self._streams[tenant] = count + 1
        return True

    def close_stream(self, tenant: str) -> None:
        count = self._streams.get(tenant, 0) - 1
        if count > 0:
            self._streams[tenant] = count
        else:
            self._streams.pop(tenant, None)

    def open_streams(self, tenant: str) -> int:
        """How many streams of ``tenant`` are open (for tests and metrics)."""
        return self._streams.get(tenant, 0)

    def _prune(self, now: float) -> None:
        for tenant in [t for t, tat in self._tat.items() if tat <= now]:
            del self._tat[tenant]
