"""The services' own counters, bound when a service is registered: cache lookups, rate limit
decisions, lock grants and waits, sessions created and revoked, events delivered. A service holds one
of these only when metrics are on."""

from __future__ import annotations

from collections.abc import Iterable

from .core import Observed, Value
from .families import (
    ALLOWED,
    CONSUME,
    DENIED,
    INLINE_POLICY,
    NEAR_LIMIT,
    NEAR_LIMIT_RATIO,
    SUBSCRIBE,
    Metrics,
)


class CacheLookups:
    """coord_cache_hits_total and coord_cache_misses_total."""

    __slots__ = ("_hits", "_misses")

    def __init__(self, metrics: Metrics) -> None:
        self._hits = metrics.cache_hits.value()
        self._misses = metrics.cache_misses.value()

    def one(self, found: bool) -> None:
        if found:
            self._hits.value += 1
        else:
            self._misses.value += 1

    def many(self, found: Iterable[bool]) -> None:
        hits = total = 0
        for each in found:
            hits += each
            total += 1
        self._hits.value += hits
        self._misses.value += total - hits


class RateLimitDecisions:
    """coord_ratelimit_decisions_total{policy, outcome}: the three series of a policy bound the first
    time it decides."""

    def __init__(self, metrics: Metrics) -> None:
        self._family = metrics.ratelimit_decisions
        self._by_policy: dict[str, tuple[Value, Value, Value]] = {}

    def _series(self, policy: str) -> tuple[Value, Value, Value]:
        series = self._by_policy.get(policy)
        if series is None:
            family = self._family
            series = self._by_policy[policy] = (
                family.value(policy, ALLOWED),
                family.value(policy, NEAR_LIMIT),
                family.value(policy, DENIED),
            )
        return series

    def record(self, policy: str | None, allowed: bool, remaining: int, limit: int) -> None:
        """One descriptor's decision; ``policy`` None for an inline rule."""
        allowed_, near, denied = self._series(policy or INLINE_POLICY)
        if not allowed:
            denied.value += 1
        elif limit > 0 and limit - remaining >= NEAR_LIMIT_RATIO * limit:
            near.value += 1
        else:
            allowed_.value += 1


class LockMetrics:
    """coord_lock_grants_total{mode}, coord_lock_waiters and coord_lock_wait_seconds, shared by every
    tenant's lock store: ``grants`` holds one series per mode label, bound here."""

    __slots__ = ("grants", "waited", "waiting")

    def __init__(self, metrics: Metrics, modes: Iterable[str]) -> None:
        self.grants = {mode: metrics.lock_grants.value(mode) for mode in modes}
        self.waiting: Value = metrics.lock_waiters.value()
        self.waited: Observed = metrics.lock_wait_seconds.observed()


class SessionCounts:
    """coord_sessions_created_total and coord_sessions_revoked_total."""

    __slots__ = ("created", "revoked")

    def __init__(self, metrics: Metrics) -> None:
        self.created: Value = metrics.sessions_created.value()
        self.revoked: Value = metrics.sessions_revoked.value()


class EventsCounts:
    """coord_events_subscribers and coord_events_delivered_total{kind}."""

    __slots__ = ("consumed", "subscribed", "subscribers")

    def __init__(self, metrics: Metrics) -> None:
        self.subscribers: Value = metrics.events_subscribers.value()
        self.subscribed: Value = metrics.events_delivered.value(SUBSCRIBE)
        self.consumed: Value = metrics.events_delivered.value(CONSUME)
