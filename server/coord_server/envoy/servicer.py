"""envoy.service.ratelimit.v3.RateLimitService transport: request -> rules -> store -> response.

What each descriptor gets follows envoyproxy/ratelimit (src/service/ratelimit.go and
src/limiter/base_limiter.go), except that the request is decided atomically (store.py):

- no rule (unknown domain, no match, or a rule ``replaces`` named): ``{code: OK}`` and nothing else;
- ``unlimited``: ``{code: OK, limit_remaining: 4294967295}``, without Redis;
- a limited rule: ``code``, ``current_limit``, ``limit_remaining`` (0 when over) and
  ``duration_until_reset``; a ``shadow_mode`` rule's OVER_LIMIT is answered OK.

The overall code is OVER_LIMIT when an enforced descriptor is over, or when the request has
``quota_mode`` descriptors and all of them are over.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from .._grpc import rpc
from ..errors import BackendUnavailable, invalid
from ..tenancy import PerTenant
from ..validation import Limits
from .loading import EnvoyLimits
from .model import Algorithm, Match, Mode, Unit, override
from .stats import EnvoyStats
from .store import EnvoyStore, Limited, Outcome

Ctx = grpc.aio.ServicerContext[Any, Any]

OK = rls_pb2.RateLimitResponse.OK
OVER_LIMIT = rls_pb2.RateLimitResponse.OVER_LIMIT
UNLIMITED_REMAINING = 2**32 - 1  # the reference's MaxUint32
# The reference's LIMIT_LIMIT_HEADER, LIMIT_REMAINING_HEADER and LIMIT_RESET_HEADER defaults.
LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER = "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"
# The units a descriptor's limit override may name (envoy.type.v3.RateLimitUnit has no WEEK).
_OVERRIDE_UNITS = {int(u): u for u in Unit if u is not Unit.WEEK}


class FailureMode(enum.Enum):
    """COORD_ENVOY_RATELIMIT_FAILURE_MODE: the answer when Redis cannot decide."""

    ERROR = "error"  # UNAVAILABLE: Envoy's failure_mode_deny decides
    DENY = "deny"  # OVER_LIMIT
    ALLOW = "allow"  # OK


class EnvoyRateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):
    def __init__(
        self,
        limits: EnvoyLimits,
        stores: PerTenant[EnvoyStore],
        validation: Limits,
        *,
        headers: bool,
        failure_mode: FailureMode,
    ) -> None:
        self._limits = limits
        self._stores = stores
        self._validation = validation
        self._headers = headers
        self._failure_mode = failure_mode
        self.stats: EnvoyStats | None = None  # when metrics are on

    @rpc
    async def ShouldRateLimit(
        self, request: rls_pb2.RateLimitRequest, context: Ctx
    ) -> rls_pb2.RateLimitResponse:
        domain = request.domain
        if not domain:
            raise invalid("domain", "rate limit domain must not be empty")
        descriptors = request.descriptors
        self._validation.batch("descriptors", len(descriptors))  # at least one, at most COORD_MAX_BATCH
        config = self._limits.config  # one snapshot for the whole request, whatever a reload does
        tree = config.domains.get(domain)
        if tree is None:  # the reference: an unknown domain limits nothing
            return _reply(OK, [{"code": OK}] * len(descriptors))
        request_hits = request.hits_addend or 1
        matches: list[Match | None] = []
        replaced: set[str] = set()
        for index, descriptor in enumerate(descriptors):
            entries = [(entry.key, entry.value) for entry in descriptor.entries]
            if descriptor.HasField("limit"):
                unit = _OVERRIDE_UNITS.get(descriptor.limit.unit)
                if unit is None:
                    raise invalid(
                        f"descriptors[{index}].limit.unit", "must be SECOND, MINUTE, HOUR, DAY, MONTH or YEAR"
                    )
                match: Match | None = override(entries, descriptor.limit.requests_per_unit, unit)
            else:
                match = config.lookup(tree, entries)
            if match is not None:
                replaced.update(match.rule.replaces)
            matches.append(match)
        limited: list[Limited] = []
        for index, (descriptor, match) in enumerate(zip(descriptors, matches, strict=True)):
            if match is None or match.rule.unlimited:
                continue
            if match.rule.name and match.rule.name in replaced:
                matches[index] = None
                continue
            hits = descriptor.hits_addend.value if descriptor.HasField("hits_addend") else request_hits
            limited.append(Limited(index, match, hits))
        outcomes = await self._stores.get().decide(domain, limited) if limited else []
        if outcomes is None:
            return self._undecided(domain, matches, limited)
        return self._response(domain, matches, limited, outcomes)

    def _response(
        self,
        domain: str,
        matches: Sequence[Match | None],
        limited: Sequence[Limited],
        outcomes: Sequence[Outcome],
    ) -> rls_pb2.RateLimitResponse:
        statuses: list[dict[str, Any]] = [_plain(match) for match in matches]
        enforced_over = False
        quotas = quotas_over = 0
        # The reference's header source: the last enforced over-limit status, else the first status
        # with the least remaining.
        chosen: tuple[int, Limited] | None = None
        least = UNLIMITED_REMAINING
        stats = self.stats
        for item, outcome in zip(limited, outcomes, strict=True):
            rule = item.match.rule
            mode = rule.mode
            remaining = 0 if outcome.over else outcome.remaining
            over = outcome.over and mode is not Mode.SHADOW
            statuses[item.index] = {
                "code": OVER_LIMIT if over else OK,
                "current_limit": rule.current_limit,
                "limit_remaining": remaining,
                "duration_until_reset": _duration(outcome.reset_us, rule.algorithm),
            }
            if mode is Mode.QUOTA:
                quotas += 1
                quotas_over += outcome.over
            elif over:
                enforced_over = True
            if remaining < least:
                least, chosen = remaining, (remaining, item)
            if over and mode is Mode.ENFORCED:
                least, chosen = 0, (0, item)
            if stats is not None:
                stats.decided(
                    domain, item.match.stat_key, item.hits, over=outcome.over, shadow=mode is Mode.SHADOW,
                    limit=rule.requests_per_unit, remaining=remaining,
                )  # fmt: skip
        denied = enforced_over or (quotas > 0 and quotas == quotas_over)
        response = _reply(OVER_LIMIT if denied else OK, statuses)
        if self._headers and chosen is not None:
            remaining, item = chosen
            reset = statuses[item.index]["duration_until_reset"]
            seconds = reset["seconds"] + (1 if reset.get("nanos") else 0)
            response.response_headers_to_add.add(
                key=LIMIT_HEADER, value=str(item.match.rule.requests_per_unit)
            )
            response.response_headers_to_add.add(key=REMAINING_HEADER, value=str(remaining))
            response.response_headers_to_add.add(key=RESET_HEADER, value=str(seconds))
        return response

    def _undecided(
        self, domain: str, matches: Sequence[Match | None], limited: Sequence[Limited]
    ) -> rls_pb2.RateLimitResponse:
        """The answer COORD_ENVOY_RATELIMIT_FAILURE_MODE gives when Redis could not decide."""
        mode = self._failure_mode
        stats = self.stats
        if stats is not None:
            stats.undecided.value(mode.value).value += 1
            for item in limited:
                stats.hit(domain, item.match.stat_key, item.hits)
        if mode is FailureMode.ERROR:
            raise BackendUnavailable("Redis could not decide the rate limit request in time")
        deny = mode is FailureMode.DENY
        statuses = [_plain(match) for match in matches]
        enforced_over = False
        quotas = 0
        for item in limited:
            rule = item.match.rule
            over = deny and rule.mode is not Mode.SHADOW
            statuses[item.index] = {"code": OVER_LIMIT if over else OK, "current_limit": rule.current_limit}
            quotas += rule.mode is Mode.QUOTA
            enforced_over |= over and rule.mode is Mode.ENFORCED
        denied = enforced_over or (deny and quotas > 0)
        return _reply(OVER_LIMIT if denied else OK, statuses)


def _reply(code: int, statuses: list[dict[str, Any]]) -> rls_pb2.RateLimitResponse:
    """The response, built from dicts by its constructor (cheaper than building each message)."""
    fields: dict[str, Any] = {"overall_code": code, "statuses": statuses}
    return rls_pb2.RateLimitResponse(**fields)


def _plain(match: Match | None) -> dict[str, Any]:
    """The status of a descriptor Redis is not asked about: no rule, or an unlimited one."""
    if match is not None and match.rule.unlimited:
        return {"code": OK, "limit_remaining": UNLIMITED_REMAINING}
    return {"code": OK}


def _duration(micros: int, algorithm: Algorithm) -> dict[str, int]:
    """``duration_until_reset``: whole seconds rounded up for the fixed window (the reference's
    ``unit - now % unit``), milliseconds rounded up for the others."""
    if algorithm is Algorithm.FIXED_WINDOW:
        return {"seconds": -(-micros // 1_000_000)}
    millis = -(-micros // 1000)
    return {"seconds": millis // 1000, "nanos": (millis % 1000) * 1_000_000}
