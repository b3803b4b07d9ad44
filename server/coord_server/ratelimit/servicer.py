"""RateLimitService transport: proto -> validated Items -> store -> proto. No Redis calls here."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

from .._grpc import answer_each, item_status, rpc, stream_error, stream_rpc
from .._proto import duration_fields_ms, timestamp_fields_ms
from ..errors import invalid
from ..metrics.services import RateLimitDecisions
from ..redis import deadline
from ..tenancy import PerTenant
from ..validation import Limits, duration_within
from . import headers
from .inline_rules import InlineRules
from .policies import PolicyRegistry
from .store import CheckPlan, Decision, Item, LimitStatus, RateLimitStore

Ctx = grpc.aio.ServicerContext[Any, Any]

_MODE_INDEPENDENT = ratelimit_pb2.MODE_INDEPENDENT
_CHECK_STREAM = "RateLimitServicer.CheckStream"
_CHECK_BATCH = "RateLimitServicer.CheckBatch"
_CHECK_BATCH_STREAM = "RateLimitServicer.CheckBatchStream"
MAX_BATCH_TIMEOUT_MS = 3_600_000
BATCHES_IN_FLIGHT = 32
_KNOWN_MODES = (ratelimit_pb2.MODE_UNSPECIFIED, ratelimit_pb2.MODE_ALL_OR_NOTHING, _MODE_INDEPENDENT)


@dataclass(frozen=True)
class _Named:
    item: Item
    name: str
    policy: str | None = None  # the loaded policy's name; None for an inline rule


class RateLimitServicer(ratelimit_pb2_grpc.RateLimitServiceServicer):
    # Every call reaches the store of the caller's tenant (tenancy.py): one lookup, no await.
    def __init__(self, stores: PerTenant[RateLimitStore], policies: PolicyRegistry, limits: Limits) -> None:
        self._stores = stores
        self._policies = policies
        self._limits = limits
        self._rules = InlineRules()
        self.decisions: RateLimitDecisions | None = None  # counted per policy, when metrics are on

    @rpc
    async def Check(self, request: ratelimit_pb2.CheckRequest, context: Ctx) -> ratelimit_pb2.CheckResponse:
        return await self._check(request)

    @stream_rpc
    async def CheckStream(
        self, requests: AsyncIterator[ratelimit_pb2.CheckStreamRequest], context: Ctx
    ) -> AsyncIterator[ratelimit_pb2.CheckStreamResponse]:
        async for request, response, error in answer_each(requests, self._check_streamed, _CHECK_STREAM):
            if error is None:
                yield ratelimit_pb2.CheckStreamResponse(request_id=request.request_id, check=response)
            else:
                yield ratelimit_pb2.CheckStreamResponse(
                    request_id=request.request_id, error=stream_error(error)
                )

    @rpc
    async def CheckBatch(
        self, request: ratelimit_pb2.CheckBatchRequest, context: Ctx
    ) -> ratelimit_pb2.CheckBatchResponse:
        self._limits.batch("checks", len(request.checks))
        return ratelimit_pb2.CheckBatchResponse(results=await self._decide_batch(request.checks))

    @stream_rpc
    async def CheckBatchStream(
        self, requests: AsyncIterator[ratelimit_pb2.CheckBatchStreamRequest], context: Ctx
    ) -> AsyncIterator[ratelimit_pb2.CheckBatchStreamResponse]:
        # Accepted: the client waits for this before its first batch (see the client's _BatchStream).
        await context.send_initial_metadata(())
        # Fewer batches than single checks at once: each may hold up to the batch limit of checks.
        batches = answer_each(
            requests, self._batch_streamed, _CHECK_BATCH_STREAM, in_flight=BATCHES_IN_FLIGHT
        )
        async for request, response, error in batches:
            if response is not None:
                yield response
            elif error is not None:
                yield ratelimit_pb2.CheckBatchStreamResponse(
                    batch_id=request.batch_id, error=stream_error(error)
                )

    async def _batch_streamed(
        self, request: ratelimit_pb2.CheckBatchStreamRequest
    ) -> ratelimit_pb2.CheckBatchStreamResponse:
        self._limits.batch("checks", len(request.checks))
        timeout = None
        if request.HasField("timeout"):
            timeout = duration_within("timeout", request.timeout, 1, MAX_BATCH_TIMEOUT_MS) / 1000
        with deadline.narrowed(timeout):  # the batch's own timeout, within the stream's deadline
            results = await self._decide_batch(request.checks)
        return ratelimit_pb2.CheckBatchStreamResponse(batch_id=request.batch_id, results=results)

    async def _decide_batch(self, checks: Sequence[ratelimit_pb2.CheckRequest]) -> Any:
        """The results of a batch, as CheckBatchResult messages and dicts (which the reply's
        constructor takes; the stubs' types do not say so)."""
        results: list[ratelimit_pb2.CheckBatchResult | dict[str, Any] | None] = [None] * len(checks)
        valid: list[tuple[int, list[_Named], CheckPlan]] = []
        store = self._stores.get()
        for index, check in enumerate(checks):
            try:
                named, plan = self._prepare(store, check)
            except Exception as error:
                results[index] = _batch_error(error)
                continue
            valid.append((index, named, plan))
        # Every valid check's script leaves for Redis at once, in one pipeline: no task per check.
        decisions = await store.check_many([plan for _, _, plan in valid])
        for (index, named, _), decision in zip(valid, decisions, strict=True):
            if isinstance(decision, Exception):
                results[index] = _batch_error(decision)
            else:
                if self.decisions is not None:
                    self._count(named, decision)
                # The dict form: built once, by the reply's constructor, not message by message.
                results[index] = {"check": _check_fields(named, decision)}
        return [r for r in results if r is not None]

    async def _check_streamed(self, request: ratelimit_pb2.CheckStreamRequest) -> ratelimit_pb2.CheckResponse:
        return await self._check(request.check)

    async def _check(self, request: ratelimit_pb2.CheckRequest) -> ratelimit_pb2.CheckResponse:
        """Check's whole work, shared by the unary call and every message of CheckStream."""
        store = self._stores.get()
        named, plan = self._prepare(store, request)
        decision = await store.check(plan)
        if self.decisions is not None:
            self._count(named, decision)
        return _check_response(named, decision)

    def _count(self, named: list[_Named], decision: Decision) -> None:
        assert self.decisions is not None
        for each, status in zip(named, decision.statuses, strict=True):
            self.decisions.record(each.policy, status.allowed, status.remaining, each.item.rule.limit)

    def _prepare(
        self, store: RateLimitStore, request: ratelimit_pb2.CheckRequest
    ) -> tuple[list[_Named], CheckPlan]:
        """Validate one check and plan its scripts; raises InvalidArgument naming the field."""
        self._limits.batch("descriptors", len(request.descriptors))
        if request.mode not in _KNOWN_MODES:
            raise invalid("mode", f"{request.mode} is not a known mode")
        independent = request.mode == _MODE_INDEPENDENT
        if request.cost < 0:
            raise invalid("cost", f"must not be negative (got {request.cost})")
        cost = request.cost or 1
        scope = self._limits.key("scope", request.scope) if request.scope else ""
        named = [self._item(i, d, cost) for i, d in enumerate(request.descriptors)]
        if len(named) == 1:  # most checks: nothing to compare
            return named, store.plan(
                [named[0].item], scope=scope, dry_run=request.dry_run, independent=independent
            )
        seen: dict[tuple[str, str, int], int] = {}
        for i, n in enumerate(named):
            identity = (scope or n.item.key, n.item.key, int(n.item.rule.algorithm))
            if identity in seen:
                raise invalid(
                    f"descriptors[{i}].key",
                    f"repeats descriptors[{seen[identity]}] (same key, scope and algorithm share one state)",
                )
            seen[identity] = i
        scopes = {scope or n.item.key for n in named}
        if not independent and len(scopes) > 1:
            raise invalid(
                "scope",
                f"an all-or-nothing check of {len(named)} descriptors with different keys needs one scope "
                "so that one atomic script can decide them; set scope, or use MODE_INDEPENDENT",
                reason="RATELIMIT_SCOPE_REQUIRED",
            )
        items = [n.item for n in named]
        return named, store.plan(items, scope=scope, dry_run=request.dry_run, independent=independent)

    @rpc
    async def Reset(self, request: ratelimit_pb2.ResetRequest, context: Ctx) -> ratelimit_pb2.ResetResponse:
        key = self._limits.key("key", request.key)
        scope = self._limits.key("scope", request.scope) if request.scope else ""
        return ratelimit_pb2.ResetResponse(existed=await self._stores.get().reset(scope, key))

    def _item(self, index: int, descriptor: ratelimit_pb2.Descriptor, request_cost: int) -> _Named:
        prefix = f"descriptors[{index}]."
        key = self._limits.key(prefix + "key", descriptor.key)
        source = descriptor.WhichOneof("rule_source")
        if source == "rule":
            rule = self._rules.get(prefix + "rule.", descriptor.rule)
            name = rule.name or f"d{index}"
        elif source == "policy":
            policy = descriptor.policy
            if not policy:
                raise invalid(prefix + "policy", "must not be empty")
            found = self._policies.get(policy)
            if found is None:
                raise invalid(
                    prefix + "policy",
                    f"no policy named {policy!r} is loaded",
                    reason="RATELIMIT_UNKNOWN_POLICY",
                    policy=policy,
                )
            rule, name = found, policy
        else:
            raise invalid(prefix + "rule", "set either an inline rule or a policy name")
        if descriptor.cost < 0:
            raise invalid(prefix + "cost", f"must not be negative (got {descriptor.cost})")
        cost = descriptor.cost or request_cost
        if cost > rule.capacity:
            field = prefix + "cost" if descriptor.cost else "cost"
            raise invalid(
                field,
                f"{cost} exceeds the rule's capacity of {rule.capacity}, so it could never be allowed",
                reason="RATELIMIT_COST_TOO_HIGH",
                cost=str(cost),
                capacity=str(rule.capacity),
            )
        return _Named(Item(key, rule, cost), name, name if source == "policy" else None)


def _batch_error(error: Exception) -> ratelimit_pb2.CheckBatchResult:
    return ratelimit_pb2.CheckBatchResult(error=stream_error(item_status(_CHECK_BATCH, error)))


# A reply is built from plain dicts, which the protobuf constructors take for message fields: every
# check's reply holds 3 + 3 per descriptor of them, and dicts cost about a third of what building the
# messages did (the whole reply of a one-rule check went from 21 to about 7 µs of server CPU).


def _duration_us(micros: int) -> dict[str, int]:
    """A Duration of ``micros`` rounded up to whole milliseconds."""
    return duration_fields_ms(-(-micros // 1000))


@functools.lru_cache(maxsize=1024)
def _period(millis: int) -> dict[str, int]:
    return _duration_us(millis * 1000)  # shared between replies: the constructor only reads it


def _status_fields(named: _Named, status: LimitStatus) -> dict[str, Any]:
    """A DescriptorStatus."""
    rule = named.item.rule
    return {
        "key": named.item.key,
        "name": named.name,
        "algorithm": rule.algorithm.value,
        "allowed": status.allowed,
        "consumed": status.consumed,
        "limit": rule.limit,
        "remaining": status.remaining,
        "reset_after": _duration_us(status.reset_after_us),
        "retry_after": _duration_us(status.retry_after_us),
        "period": _period(rule.period_ms),
    }


def _check_fields(named: list[_Named], decision: Decision) -> dict[str, Any]:
    """A CheckResponse."""
    statuses = decision.statuses
    if len(statuses) == 1:
        binding, retry_us = 0, (0 if statuses[0].allowed else statuses[0].retry_after_us)
    else:
        binding = min(range(len(statuses)), key=lambda i: statuses[i].remaining)
        retry_us = max((s.retry_after_us for s in statuses if not s.allowed), default=0)
    policy = headers.ratelimit_policy(
        tuple((n.name, n.item.rule.limit, n.item.rule.period_ms) for n in named)
    )
    state = ""
    if not decision.backend_unavailable:
        state = headers.ratelimit(
            (n.name, s.remaining, s.reset_after_us) for n, s in zip(named, statuses, strict=True)
        )
    return {
        "allowed": decision.allowed,
        "limit": named[binding].item.rule.limit,
        "remaining": statuses[binding].remaining,
        "reset_after": _duration_us(statuses[binding].reset_after_us),
        "retry_after": _duration_us(retry_us),
        "statuses": [_status_fields(n, s) for n, s in zip(named, statuses, strict=True)],
        "ratelimit_header": state,
        "ratelimit_policy_header": policy,
        "backend_unavailable": decision.backend_unavailable,
        # Unset for 0 (no Redis clock: decided by the failure modes).
        "decide_time": timestamp_fields_ms(decision.now_us // 1000),
    }


def _check_response(named: list[_Named], decision: Decision) -> ratelimit_pb2.CheckResponse:
    return ratelimit_pb2.CheckResponse(**_check_fields(named, decision))
