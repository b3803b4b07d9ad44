"""envoyproxy/ratelimit's per-rule statistics as Prometheus counters, bound when metrics are on.

Each limited descriptor counts its hits (the request's or the descriptor's ``hits_addend``) under
``domain`` and ``descriptor`` (the rule's path, ``key1_value1.subkey1``; per value with
``detailed_metric``, or with ``value_to_metric`` where it says so): ``total_hits`` always, then
``over_limit`` or ``within_limit``, ``near_limit`` for the hits past 80% of the limit (the
reference's NEAR_LIMIT_RATIO), ``shadow_mode`` for over-limit hits a shadow rule let through. An
over-limit descriptor consumed nothing, so all its hits count as over the limit.
"""

from __future__ import annotations

import math

from ..metrics import Metrics
from ..metrics.core import Family, Value
from ..metrics.families import NEAR_LIMIT_RATIO

_LABELS = ("domain", "descriptor")
_STATS = (
    ("total_hits", "Hits (hits_addend units) of descriptors that matched a limited rule."),
    ("over_limit", "Hits of descriptors over their limit (none of them consumed)."),
    ("near_limit", "Hits allowed past 80% of their limit (envoyproxy/ratelimit's NEAR_LIMIT_RATIO)."),
    ("within_limit", "Hits of descriptors within their limit."),
    ("shadow_mode", "Over-limit hits of shadow_mode rules, answered OK."),
)


class EnvoyStats:
    """coord_envoy_ratelimit_<stat>_total{domain, descriptor}, the reference's five statistics, and
    the requests and reloads that went wrong."""

    def __init__(self, metrics: Metrics) -> None:
        add = metrics.registry.add
        self._families = [
            add(Family(f"coord_envoy_ratelimit_{stat}_total", text, "counter", _LABELS))
            for stat, text in _STATS
        ]
        self._series: dict[tuple[str, str], tuple[Value, ...]] = {}
        self.undecided = add(
            Family(
                "coord_envoy_ratelimit_undecided_total",
                "ShouldRateLimit requests Redis could not decide in time, answered as "
                "COORD_ENVOY_RATELIMIT_FAILURE_MODE says (error, deny or allow).",
                "counter",
                ("mode",),
            )
        )
        self._loads = add(
            Family(
                "coord_envoy_ratelimit_config_loads_total",
                "Reloads of COORD_ENVOY_RATELIMIT_CONFIG (SIGHUP), by result: loaded or refused (the "
                "previous configuration stays in force).",
                "counter",
                ("result",),
            )
        )
        self.loaded, self.refused = self._loads.value("loaded"), self._loads.value("refused")

    def on_load(self, loaded: bool) -> None:
        (self.loaded if loaded else self.refused).value += 1

    def _of(self, domain: str, descriptor: str) -> tuple[Value, ...]:
        series = self._series.get((domain, descriptor))
        if series is None:
            series = self._series[(domain, descriptor)] = tuple(
                family.value(domain, descriptor) for family in self._families
            )
        return series

    def hit(self, domain: str, descriptor: str, hits: int) -> None:
        """A descriptor Redis did not decide (only its hits are known)."""
        self._of(domain, descriptor)[0].value += hits

    def decided(
        self, domain: str, descriptor: str, hits: int, *, over: bool, shadow: bool, limit: int, remaining: int
    ) -> None:
        total, over_limit, near_limit, within, shadowed = self._of(domain, descriptor)
        total.value += hits
        if over:
            over_limit.value += hits
            if shadow:
                shadowed.value += hits
            return
        within.value += hits
        near = math.floor(limit * NEAR_LIMIT_RATIO)
        used = limit - remaining  # after this descriptor's hits
        if used > near:
            before = used - hits
            near_limit.value += hits if before >= near else used - near
