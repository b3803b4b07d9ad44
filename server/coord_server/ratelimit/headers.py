"""Ready-made values for the IETF ``RateLimit`` and ``RateLimit-Policy`` HTTP header fields
(draft-ietf-httpapi-ratelimit-headers): Structured Field Lists with one item per descriptor.

Names are 1-64 of A-Z a-z 0-9 _ . : - (validated), so they need no escaping in an sf-string. Both are
built for every check a server answers: plain tuples, no objects, and the policy (which depends only
on the rules) is remembered.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable


def _ceil_seconds(micros: int) -> int:
    return -(-micros // 1_000_000)


def ratelimit(items: Iterable[tuple[str, int, int]]) -> str:
    """``"<name>";r=<remaining>;t=<seconds until reset, rounded up>`` per (name, remaining,
    reset_after_us)."""
    return ", ".join(
        f'"{name}";r={remaining};t={_ceil_seconds(reset_us)}' for name, remaining, reset_us in items
    )


@functools.lru_cache(maxsize=4096)
def ratelimit_policy(items: tuple[tuple[str, int, int], ...]) -> str:
    """``"<name>";q=<limit>;w=<period in seconds, rounded up>`` per (name, limit, period_ms)."""
    return ", ".join(
        f'"{name}";q={limit};w={_ceil_seconds(period_ms * 1000)}' for name, limit, period_ms in items
    )
