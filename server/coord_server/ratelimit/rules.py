"""Rate limit rules: the algorithms, the failure modes and the one validation both inline rules and
policy files go through. Every failure names the field it is about."""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from ..config import format_duration
from ..errors import invalid

MAX_LOG_LIMIT = 1000  # a sliding log stores one entry per unit: about 120 bytes each
MAX_LIMIT = 1 << 50  # keeps every count exact in a Lua double
MIN_PERIOD_MS = 1
MAX_PERIOD_MS = 366 * 86_400_000
MAX_BUCKET_US = 10 * 365 * 86_400_000_000  # longest time a token bucket may take to refill
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class Algorithm(enum.IntEnum):
    """The values of ``coord.ratelimit.v1.Algorithm`` and of check.lua's ``algo`` argument."""

    TOKEN_BUCKET = 1
    SLIDING_WINDOW = 2
    SLIDING_LOG = 3
    FIXED_WINDOW = 4


class FailureMode(enum.IntEnum):
    """The values of ``coord.ratelimit.v1.FailureMode``: what a rule decides without Redis."""

    CLOSED = 1
    OPEN = 2


@dataclass(frozen=True)
class Rule:
    """A validated rule. ``burst`` is the token bucket capacity (equal to ``limit`` otherwise)."""

    algorithm: Algorithm
    limit: int
    period_ms: int
    burst: int
    on_backend_error: FailureMode
    name: str = ""

    @property
    def capacity(self) -> int:
        """The largest cost this rule can ever allow at once."""
        return self.burst

    @property
    def period_us(self) -> int:
        return self.period_ms * 1000

    @property
    def interval_us(self) -> int:
        """The token bucket's emission interval, rounded up so the rate is never exceeded."""
        return -(-self.period_us // self.limit)

    @functools.cached_property
    def script_args(self) -> tuple[int, int, int, int, int]:
        """What check.lua takes of this rule per descriptor (before the cost, after it the interval):
        algorithm, limit, period us, burst, and the interval (0 but for the token bucket). Made once
        per rule: rules are shared by every check that uses them."""
        interval = self.interval_us if self.algorithm is Algorithm.TOKEN_BUCKET else 0
        return (int(self.algorithm), self.limit, self.period_us, self.burst, interval)


def make_rule(
    prefix: str,
    *,
    algorithm: int,
    limit: int,
    period_ms: int,
    burst: int = 0,
    on_backend_error: int = 0,
    name: str = "",
) -> Rule:
    """Validate raw rule values; 0 means the default for algorithm, burst and on_backend_error.

    ``prefix`` is prepended to field names in errors (``descriptors[2].rule.``).
    """
    if algorithm == 0:
        algorithm = Algorithm.TOKEN_BUCKET
    if algorithm not in set(Algorithm):
        raise invalid(prefix + "algorithm", f"{algorithm} is not a known algorithm")
    algo = Algorithm(algorithm)
    if on_backend_error == 0:
        on_backend_error = FailureMode.CLOSED
    if on_backend_error not in set(FailureMode):
        raise invalid(prefix + "on_backend_error", f"{on_backend_error} is not a known failure mode")
    if not MIN_PERIOD_MS <= period_ms <= MAX_PERIOD_MS:
        low, high, got = (format_duration(ms / 1000) for ms in (MIN_PERIOD_MS, MAX_PERIOD_MS, period_ms))
        raise invalid(prefix + "period", f"must lie between {low} and {high} (got {got})", min=low, max=high)
    if limit < 1:
        raise invalid(prefix + "limit", f"must be at least 1 (got {limit})")
    if limit > MAX_LIMIT:
        raise invalid(prefix + "limit", f"must be at most {MAX_LIMIT} (got {limit})")
    if algo is Algorithm.SLIDING_LOG and limit > MAX_LOG_LIMIT:
        raise invalid(
            prefix + "limit",
            f"a sliding log keeps one entry per unit, so its limit is at most {MAX_LOG_LIMIT} (got {limit});"
            " use the sliding window counter or the token bucket for larger limits",
        )
    if algo is Algorithm.TOKEN_BUCKET and limit > period_ms * 1000:
        raise invalid(
            prefix + "limit",
            f"{limit} per {period_ms} ms is faster than one unit per microsecond; use a longer period",
        )
    if burst < 0:
        raise invalid(prefix + "burst", f"must not be negative (got {burst})")
    if burst and algo is not Algorithm.TOKEN_BUCKET:
        raise invalid(prefix + "burst", "applies only to the token bucket algorithm")
    burst = burst or limit
    if burst > MAX_LIMIT:
        raise invalid(prefix + "burst", f"must be at most {MAX_LIMIT} (got {burst})")
    rule = Rule(algo, limit, period_ms, burst, FailureMode(on_backend_error), name)
    if algo is Algorithm.TOKEN_BUCKET and burst * rule.interval_us > MAX_BUCKET_US:
        raise invalid(prefix + "burst", "a bucket this large would take more than 10 years to refill")
    if name:
        check_name(prefix + "name", name)
    return rule


def check_name(field: str, name: str) -> str:
    """A rule or policy name: it labels header items, so it must need no escaping there."""
    if not _NAME.match(name):
        raise invalid(field, "must be 1 to 64 characters from A-Z, a-z, 0-9 and _.:-")
    return name
