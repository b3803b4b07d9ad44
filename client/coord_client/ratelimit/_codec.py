"""The RateLimit service's requests and decisions, shared by the sync and async clients. No I/O here.

This is the client's hot path: every check builds a request here and reads its decision here, and
an asyncio gateway makes tens of thousands a second. So the two are plain functions (no
:class:`~coord_client._call.Call` in between for the async client), a Rule is parsed and built once
per distinct Limit (:func:`_rule`), and a decision reads its durations and time without protobuf's
pure-Python helpers.
"""

from __future__ import annotations

import functools
import re

from coord.ratelimit.v1 import ratelimit_pb2

from .._call import Call
from .._convert import from_duration_ms, parse_duration, to_duration, utc
from .models import Decision, Limit, LimitStatus

SERVICE = "coord.ratelimit.v1.RateLimitService"
METHOD_PREFIX = f"/{SERVICE}/"

ALGORITHMS = {
    "token_bucket": ratelimit_pb2.ALGORITHM_TOKEN_BUCKET,
    "sliding_window": ratelimit_pb2.ALGORITHM_SLIDING_WINDOW,
    "sliding_log": ratelimit_pb2.ALGORITHM_SLIDING_LOG,
    "fixed_window": ratelimit_pb2.ALGORITHM_FIXED_WINDOW,
}
_ALGORITHM_NAMES = {v: k for k, v in ALGORITHMS.items()}
_FAILURE_MODES = {"closed": ratelimit_pb2.FAILURE_MODE_CLOSED, "open": ratelimit_pb2.FAILURE_MODE_OPEN}
# LIMIT/PERIOD; the period is a bare unit ("m": one minute) or a duration in Coord's one syntax.
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")
_BARE_UNIT = re.compile(r"ms|s|m|h|d")


def parse_rate(rate: str) -> tuple[int, float]:
    """``"100/m"`` -> (100, 60.0); also ``"10/s"``, ``"5/15m"``, ``"3/2.5s"``, ``"1/1h30m"``, ``"1000/d"``."""
    match = _RATE.fullmatch(rate)
    try:
        if not match:
            raise ValueError(rate)
        period = match.group(2)
        # A zero period goes to the server, which refuses it with the field named.
        seconds = parse_duration("1" + period if _BARE_UNIT.fullmatch(period) else period, allow_zero=True)
    except ValueError:
        raise ValueError(
            f"rate {rate!r} is not LIMIT/PERIOD (examples: 10/s, 100/m, 5/15m, 1/1h30m, 1000/d)"
        ) from None
    return int(match.group(1)), seconds


# ---------------------------------------------------------------- requests


def check(
    limits: tuple[Limit, ...], cost: int, dry_run: bool, independent: bool, scope: str
) -> Call[Decision]:
    return Call("Check", check_request(limits, cost, dry_run, independent, scope), decision)


def reset(key: str, scope: str) -> Call[bool]:
    return Call("Reset", ratelimit_pb2.ResetRequest(key=key, scope=scope), lambda r: bool(r.existed))


def check_request(
    limits: tuple[Limit, ...], cost: int, dry_run: bool, independent: bool, scope: str
) -> ratelimit_pb2.CheckRequest:
    if not limits:
        raise ValueError("check needs at least one Limit")
    return ratelimit_pb2.CheckRequest(
        descriptors=[_descriptor(x) for x in limits],
        cost=cost,
        dry_run=dry_run,
        mode=ratelimit_pb2.MODE_INDEPENDENT if independent else ratelimit_pb2.MODE_ALL_OR_NOTHING,
        scope=scope,
    )


def _descriptor(limit: Limit) -> ratelimit_pb2.Descriptor:
    if not isinstance(limit.key, str):
        raise TypeError(f"key must be a str, not {type(limit.key).__name__}")
    if (limit.rate is None) == (limit.policy is None):
        raise ValueError(f"limit {limit.key!r}: give exactly one of rate= or policy=")
    if limit.policy is not None:
        return ratelimit_pb2.Descriptor(key=limit.key, policy=limit.policy, cost=limit.cost)
    assert limit.rate is not None
    rule = _rule(limit.rate, limit.burst, limit.algorithm, limit.on_backend_error, limit.name)
    return ratelimit_pb2.Descriptor(key=limit.key, rule=rule, cost=limit.cost)


@functools.lru_cache(maxsize=1024)
def _rule(rate: str, burst: int, algorithm: str, on_backend_error: str, name: str) -> ratelimit_pb2.Rule:
    """The validated Rule of a Limit's fields. A service checks the same few rules for every request:
    parsing and building one is most of what a check costs the client, so each is made once (the
    Descriptor copies it; this one is never changed)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)} (got {algorithm!r})")
    if on_backend_error not in _FAILURE_MODES:
        raise ValueError(f"on_backend_error must be 'closed' or 'open' (got {on_backend_error!r})")
    count, seconds = parse_rate(rate)
    return ratelimit_pb2.Rule(
        algorithm=ALGORITHMS[algorithm],
        limit=count,
        period=to_duration(seconds),
        burst=burst,
        on_backend_error=_FAILURE_MODES[on_backend_error],
        name=name,
    )


# ---------------------------------------------------------------- decisions


def decision(response: ratelimit_pb2.CheckResponse) -> Decision:
    # Durations in whole ms (from_duration_ms): a decision reads 3 + 3 per descriptor of them.
    headers = {}
    if response.ratelimit_header:
        headers["RateLimit"] = response.ratelimit_header
    if response.ratelimit_policy_header:
        headers["RateLimit-Policy"] = response.ratelimit_policy_header
    return Decision(
        allowed=response.allowed,
        limit=response.limit,
        remaining=response.remaining,
        reset_after=from_duration_ms(response.reset_after),
        retry_after=from_duration_ms(response.retry_after),
        statuses=[
            LimitStatus(
                key=s.key,
                name=s.name,
                algorithm=_ALGORITHM_NAMES.get(s.algorithm, "unknown"),
                allowed=s.allowed,
                consumed=s.consumed,
                limit=s.limit,
                remaining=s.remaining,
                reset_after=from_duration_ms(s.reset_after),
                retry_after=from_duration_ms(s.retry_after),
                period=from_duration_ms(s.period),
            )
            for s in response.statuses
        ],
        headers=headers,
        backend_unavailable=response.backend_unavailable,
        decide_time=utc(response.decide_time) if response.HasField("decide_time") else None,
    )
