"""The loaded configuration as envoyproxy/ratelimit holds it, and its lookup.

Each domain is a tree of descriptor nodes. A request descriptor's entries walk down the tree one level
per entry; at each level the most specific child wins: the exact ``key``/``value``, then the first
wildcard value (config order) the value matches, then the ``key`` with no value. The descriptor gets
the rule of the node its *last* entry reached, if that node has one; a request deeper or shallower
than the configured rule gets none (config_impl.go's GetLimit, the reference's lookup).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Entries = Sequence[tuple[str, str]]


class Unit(enum.IntEnum):
    """The values of ``RateLimitResponse.RateLimit.Unit``."""

    SECOND = 1
    MINUTE = 2
    HOUR = 3
    DAY = 4
    MONTH = 5
    YEAR = 6
    WEEK = 7


#: Seconds per unit, as envoyproxy/ratelimit counts them (a month is 30 days, a year 365).
UNIT_SECONDS: Mapping[Unit, int] = {
    Unit.SECOND: 1,
    Unit.MINUTE: 60,
    Unit.HOUR: 3600,
    Unit.DAY: 86_400,
    Unit.WEEK: 7 * 86_400,
    Unit.MONTH: 30 * 86_400,
    Unit.YEAR: 365 * 86_400,
}


class Algorithm(enum.IntEnum):
    """How a rule counts: the numbers should_rate_limit.lua takes (those of the RateLimit service)."""

    GCRA = 1
    SLIDING_WINDOW = 2
    FIXED_WINDOW = 4


class Mode(enum.IntEnum):
    """What an over-limit descriptor does to its request (should_rate_limit.lua's mode argument)."""

    ENFORCED = 0  # denies it
    SHADOW = 1  # nothing: counted in the shadow_mode statistic only
    QUOTA = 2  # denies it only when every quota descriptor of the request is over


@dataclass(frozen=True)
class Rule:
    """A ``rate_limit`` block with the flags of its descriptor.

    ``stat_key`` is the path of the rule in the config (``key1_value1.subkey1``), what envoyproxy/
    ratelimit names its statistics by, after the domain.
    """

    requests_per_unit: int
    unit: Unit | None  # None only when unlimited
    name: str = ""
    unlimited: bool = False
    replaces: frozenset[str] = frozenset()
    shadow_mode: bool = False
    quota_mode: bool = False
    detailed_metric: bool = False
    algorithm: Algorithm = Algorithm.FIXED_WINDOW
    stat_key: str = ""

    @property
    def mode(self) -> Mode:
        if self.shadow_mode:  # the reference turns a shadow rule's OVER_LIMIT into OK before anything else
            return Mode.SHADOW
        return Mode.QUOTA if self.quota_mode else Mode.ENFORCED

    @property
    def unit_seconds(self) -> int:
        assert self.unit is not None
        return UNIT_SECONDS[self.unit]

    @functools.cached_property
    def script_args(self) -> tuple[int, int, int, int]:
        """What should_rate_limit.lua takes of this rule: algorithm, limit, unit us, interval us."""
        period_us = self.unit_seconds * 1_000_000
        interval = -(-period_us // self.requests_per_unit) if self.algorithm is Algorithm.GCRA else 0
        return (int(self.algorithm), self.requests_per_unit, period_us, interval)

    @functools.cached_property
    def current_limit(self) -> dict[str, Any]:
        """The ``RateLimitResponse.RateLimit`` of this rule, as the dict its constructor takes."""
        limit: dict[str, Any] = {"requests_per_unit": self.requests_per_unit, "unit": int(self.unit or 0)}
        if self.name:
            limit["name"] = self.name
        return limit


@dataclass
class Node:
    """One descriptor of the config (or a domain's root) and the descriptors nested in it."""

    rule: Rule | None = None
    exact: dict[tuple[str, str], Node] = field(default_factory=dict)  # key and value
    defaults: dict[str, Node] = field(default_factory=dict)  # key with no value
    wildcards: list[Wildcard] = field(default_factory=list)  # values with '*', in config order
    value_to_metric: bool = False
    share_threshold: bool = False

    @property
    def has_children(self) -> bool:
        return bool(self.exact or self.defaults or self.wildcards)


@dataclass(frozen=True)
class Wildcard:
    """A child whose value holds ``*``s, each matching any run of characters (possibly empty)."""

    key: str
    pattern: str
    node: Node

    @functools.cached_property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.pattern.split("*"))

    def matches(self, value: str) -> bool:
        """The reference's wildcardMatch, on the value alone (the keys are compared equal first)."""
        parts = self.parts
        first, last = parts[0], parts[-1]
        if not value.startswith(first) or not value.endswith(last):
            return False
        if len(value) < sum(len(p) for p in parts):
            return False
        rest = value[len(first) : len(value) - len(last)]
        for part in parts[1:-1]:
            at = rest.find(part)
            if at < 0:
                return False
            rest = rest[at + len(part) :]
        return True


@dataclass(frozen=True)
class Match:
    """A descriptor's rule, what its counter is keyed by and the label of its statistics."""

    rule: Rule
    counter: tuple[tuple[str, str], ...]  # the entries, a share_threshold entry's value its pattern
    stat_key: str


@dataclass(frozen=True)
class Config:
    """Every domain's tree: what one ShouldRateLimit reads, whole, for its whole request."""

    domains: Mapping[str, Node]
    sources: tuple[str, ...] = ()  # the files it was read from

    def lookup(self, domain: Node, entries: Entries) -> Match | None:
        """The rule ``entries`` get in ``domain`` (see the module docstring), or None."""
        parent = domain
        last = len(entries) - 1
        found: Rule | None = None
        shared: dict[int, str] = {}
        labels: list[str] = []
        for index, (key, value) in enumerate(entries):
            node: Node | None = parent.exact.get((key, value)) if value else None
            label = value
            if node is None:
                for wildcard in parent.wildcards:
                    if wildcard.key == key and wildcard.matches(value):
                        node = wildcard.node
                        if node.share_threshold:  # every matching value shares one counter
                            shared[index] = label = wildcard.pattern
                        elif not node.value_to_metric:
                            label = wildcard.pattern
                        break
                if node is None:
                    node = parent.defaults.get(key)
                    if node is None:
                        return None
                    if not node.value_to_metric:
                        label = ""
            labels.append(f"{key}_{label}" if label else key)
            if index == last:
                found = node.rule
            elif not node.has_children:
                return None
            parent = node
        if found is None:
            return None
        counter = tuple((key, shared.get(index, value)) for index, (key, value) in enumerate(entries))
        if found.detailed_metric:  # one series per value, not per rule
            stat_key = ".".join(f"{k}_{v}" if v else k for k, v in counter)
        else:
            stat_key = ".".join(labels)
        return Match(found, counter, stat_key)


def override(entries: Entries, requests_per_unit: int, unit: Unit) -> Match:
    """The rule of a descriptor that carries its own limit (Envoy's rate limit override): a fixed
    window under the descriptor's entries, named in statistics by its entries."""
    counter = tuple(entries)
    stat_key = ".".join(f"{k}_{v}" if v else k for k, v in counter)
    rule = Rule(requests_per_unit, unit, stat_key=stat_key)
    return Match(rule, counter, stat_key)


__all__ = [
    "UNIT_SECONDS",
    "Algorithm",
    "Config",
    "Match",
    "Mode",
    "Node",
    "Rule",
    "Unit",
    "Wildcard",
    "override",
]
