"""Ready-made values for the IETF ``RateLimit`` and ``RateLimit-Policy`` HTTP header fields
(draft-ietf-httpapi-ratelimit-headers): Structured Field Lists with one item per descriptor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HeaderItem:
    name: str  # 1-64 of A-Z a-z 0-9 _ . : - (validated), so it needs no escaping in an sf-string
    limit: int
    period_ms: int
    remaining: int
    reset_after_us: int


def _ceil_seconds(micros: int) -> int:
    return -(-micros // 1_000_000)


def ratelimit(items: Sequence[HeaderItem]) -> str:
    """``"<name>";r=<remaining>;t=<seconds until reset, rounded up>`` per item."""
    return ", ".join(f'"{i.name}";r={i.remaining};t={_ceil_seconds(i.reset_after_us)}' for i in items)


def ratelimit_policy(items: Sequence[HeaderItem]) -> str:
    """``"<name>";q=<limit>;w=<period in seconds, rounded up>`` per item."""
    return ", ".join(f'"{i.name}";q={i.limit};w={_ceil_seconds(i.period_ms * 1000)}' for i in items)
