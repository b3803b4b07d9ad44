"""LockService transport: proto -> validated dataclasses -> store / hold -> proto. No Redis calls here."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2

from coord.lock.v1 import lock_pb2, lock_pb2_grpc

from .._grpc import rpc
from .._proto import duration_of_ms, timestamp_ms
from ..errors import CoordError, invalid
from ..tenancy import PerTenant
from ..validation import Limits, duration_within
from . import hold
from .store import AcquireResult, Grant, Holder, LockRequest, LockStore, Mode, ReleaseOutcome

log = logging.getLogger("coord_server.rpc")

# The end-of-stream marker of context.read() (missing from grpc's type stubs).
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]

Ctx = grpc.aio.ServicerContext[Any, Any]

MAX_LIMIT = 65536
MAX_OWNER_BYTES = 256
MAX_TOKEN_CHARS = 128
DESCRIBE_MAX_HOLDERS = 100

_MODE_IN = {lock_pb2.LOCK_MODE_EXCLUSIVE: Mode.EXCLUSIVE, lock_pb2.LOCK_MODE_SHARED: Mode.SHARED}
_MODE_OUT = {Mode.EXCLUSIVE: lock_pb2.LOCK_MODE_EXCLUSIVE, Mode.SHARED: lock_pb2.LOCK_MODE_SHARED}


@dataclass(frozen=True)
class LockLimits:
    """Input limits of the Lock service: the shared ones plus the default lock TTL."""

    common: Limits
    default_ttl_ms: int


class LockServicer(lock_pb2_grpc.LockServiceServicer):
    # Every call reaches the store of the caller's tenant (tenancy.py): one lookup, no await. A Hold
    # keeps the store it started with, so its release after the stream ends is the same tenant's.
    def __init__(self, stores: PerTenant[LockStore], limits: LockLimits) -> None:
        self._stores = stores
        self._limits = limits

    # -- unary RPCs --------------------------------------------------------------------------------

    @rpc
    async def Acquire(self, request: lock_pb2.AcquireRequest, context: Ctx) -> lock_pb2.AcquireResponse:
        lock, wait_s = self._lock_request("", request)
        return _acquire_pb(await self._stores.get().acquire(lock, wait_s))

    @rpc
    async def Release(self, request: lock_pb2.ReleaseRequest, context: Ctx) -> lock_pb2.ReleaseResponse:
        name = self._limits.common.key("name", request.name)
        outcome = await self._stores.get().release(name, _token("lock_token", request.lock_token))
        return lock_pb2.ReleaseResponse(outcome=_release_pb(outcome))

    @rpc
    async def Extend(self, request: lock_pb2.ExtendRequest, context: Ctx) -> lock_pb2.ExtendResponse:
        name = self._limits.common.key("name", request.name)
        token = _token("lock_token", request.lock_token)
        ttl = self._ttl_ms("ttl", request.ttl)
        result = await self._stores.get().extend(name, token, ttl, request.resume)
        outcome = lock_pb2.ExtendOutcome.Value("EXTEND_OUTCOME_" + result.outcome.value)
        if not result.outcome.holds:
            return lock_pb2.ExtendResponse(outcome=outcome)
        return lock_pb2.ExtendResponse(
            outcome=outcome,
            expire_time=timestamp_ms(result.expire_ms),
            valid_for=duration_of_ms(result.valid_for_ms),
            fencing_token=result.fencing_token,
        )

    @rpc
    async def Describe(self, request: lock_pb2.DescribeRequest, context: Ctx) -> lock_pb2.DescribeResponse:
        name = self._limits.common.key("name", request.name)
        info = await self._stores.get().describe(name, DESCRIBE_MAX_HOLDERS)
        return lock_pb2.DescribeResponse(
            name=name,
            mode=_MODE_OUT[info.mode] if info.mode else lock_pb2.LOCK_MODE_UNSPECIFIED,
            holders=[_holder_pb(h) for h in info.holders],
            holder_count=info.holder_count,
            queue_length=info.queue_length,
            last_fencing_token=info.last_fencing_token,
            limit=info.limit,
        )

    # -- Hold --------------------------------------------------------------------------------------

    # Hold reads and writes through the context (not an iterator): it must read while it waits.
    @rpc
    async def Hold(self, request_iterator: Any, context: Ctx) -> None:  # type: ignore[override]
        first = await context.read()
        if first is EOF:
            return
        assert isinstance(first, lock_pb2.HoldRequest)
        if first.WhichOneof("kind") != "acquire":
            raise invalid("acquire", "the first message of a Hold stream must be acquire")
        lock, wait_s = self._lock_request("acquire.", first.acquire)
        session = hold.Hold(self._stores.get(), lock, wait_s, self._hold_requests(context))
        async with contextlib.aclosing(session.outcomes()) as outcomes:
            async for outcome in outcomes:
                await context.write(_hold_pb(outcome))

    async def _hold_requests(self, context: Ctx) -> AsyncIterator[hold.Request]:
        """The client's messages after the first; ends when the stream is closed or broken."""
        while True:
            try:
                message = await context.read()
            except CoordError as error:  # bytes that are not a HoldRequest (_decoding.py)
                yield hold.Unreadable(error)
                return
            except Exception:
                log.debug("Hold stream read failed", exc_info=True)
                return
            if message is EOF:
                return
            yield self._hold_request(message)

    def _hold_request(self, message: lock_pb2.HoldRequest) -> hold.Request:
        # Refusals are checked only once the lock is held (while queued, only a release counts).
        kind = message.WhichOneof("kind")
        if kind == "release":
            return hold.Release()
        if kind == "acquire":
            return hold.Refused(invalid("acquire", "only the first message of a Hold stream may be acquire"))
        try:
            # Unset or zero: 0, which keeps the TTL of the acquire message.
            return hold.Heartbeat(self._limits.common.ttl("heartbeat.ttl", message.heartbeat.ttl, unset_ms=0))
        except CoordError as error:
            return hold.Refused(error)

    # -- validation --------------------------------------------------------------------------------

    def _lock_request(self, prefix: str, request: lock_pb2.AcquireRequest) -> tuple[LockRequest, float]:
        name = self._limits.common.key(prefix + "name", request.name)
        mode = _MODE_IN.get(request.mode)
        if mode is None:
            raise invalid(prefix + "mode", "must be LOCK_MODE_EXCLUSIVE or LOCK_MODE_SHARED")
        limit = 0
        if request.HasField("limit"):
            limit = request.limit
            if not 1 <= limit <= MAX_LIMIT:
                raise invalid(prefix + "limit", f"must be between 1 and {MAX_LIMIT} (got {limit})")
            if mode is Mode.EXCLUSIVE and limit != 1:
                raise invalid(prefix + "limit", "applies to LOCK_MODE_SHARED only (leave it unset)")
            if mode is Mode.EXCLUSIVE:
                limit = 0
        ttl = self._ttl_ms(prefix + "ttl", request.ttl)
        wait_ms = duration_within(prefix + "wait", request.wait, 0, self._limits.common.max_ttl_ms)
        owner = request.owner
        if len(owner.encode("utf-8", "surrogatepass")) > MAX_OWNER_BYTES:
            raise invalid(prefix + "owner", f"must be at most {MAX_OWNER_BYTES} bytes")
        if any(c in owner for c in "\x00\r\n"):
            raise invalid(prefix + "owner", "must not contain NUL, CR or LF characters")
        return LockRequest(name, mode, limit, ttl, owner), wait_ms / 1000

    def _ttl_ms(self, field: str, value: duration_pb2.Duration) -> int:
        return self._limits.common.ttl(field, value, unset_ms=self._limits.default_ttl_ms)


def _token(field: str, token: str) -> str:
    if not token:
        raise invalid(field, "must not be empty")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise invalid(field, "is not a lock token returned by Acquire")
    return token


def _holder_pb(holder: Holder) -> lock_pb2.Holder:
    return lock_pb2.Holder(
        owner=holder.owner,
        mode=_MODE_OUT[holder.mode],
        fencing_token=holder.fencing_token,
        expire_time=timestamp_ms(holder.expire_ms),
        remaining=duration_of_ms(holder.remaining_ms),
        limit=holder.limit,
    )


def _grant_pb(grant: Grant) -> lock_pb2.Grant:
    return lock_pb2.Grant(
        name=grant.name,
        lock_token=grant.lock_token,
        fencing_token=grant.fencing_token,
        expire_time=timestamp_ms(grant.expire_ms),
        valid_for=duration_of_ms(grant.valid_for_ms),
        mode=_MODE_OUT[grant.mode],
    )


def _acquire_pb(result: AcquireResult) -> lock_pb2.AcquireResponse:
    if result.grant is not None:
        return lock_pb2.AcquireResponse(acquired=True, grant=_grant_pb(result.grant))
    assert result.denial is not None
    return lock_pb2.AcquireResponse(
        acquired=False,
        holders=[_holder_pb(h) for h in result.denial.holders],
        queue_position=result.denial.queue_position,
        queue_length=result.denial.queue_length,
    )


def _release_pb(outcome: ReleaseOutcome) -> lock_pb2.ReleaseOutcome.ValueType:
    return lock_pb2.ReleaseOutcome.Value("RELEASE_OUTCOME_" + outcome.value)


def _hold_pb(outcome: hold.Outcome) -> lock_pb2.HoldResponse:
    match outcome:
        case hold.Queued(denial):
            holders = [_holder_pb(h) for h in denial.holders]
            return lock_pb2.HoldResponse(
                queued=lock_pb2.HoldQueued(position=denial.queue_position, holders=holders)
            )
        case hold.NotAcquired(None):
            return lock_pb2.HoldResponse(not_acquired=lock_pb2.HoldNotAcquired())  # the client gave up
        case hold.NotAcquired(denial):
            assert denial is not None
            return lock_pb2.HoldResponse(
                not_acquired=lock_pb2.HoldNotAcquired(
                    holders=[_holder_pb(h) for h in denial.holders], queue_position=denial.queue_position
                )
            )
        case hold.Granted(grant):
            return lock_pb2.HoldResponse(acquired=_grant_pb(grant))
        case hold.Renewed(result):
            return lock_pb2.HoldResponse(
                renewed=lock_pb2.HoldRenewed(
                    expire_time=timestamp_ms(result.expire_ms),
                    valid_for=duration_of_ms(result.valid_for_ms),
                    fencing_token=result.fencing_token,
                )
            )
        case hold.Released(release_outcome):
            return lock_pb2.HoldResponse(released=lock_pb2.HoldReleased(outcome=_release_pb(release_outcome)))
        case hold.Lost(reason):
            return lock_pb2.HoldResponse(
                lost=lock_pb2.HoldLost(
                    reason=lock_pb2.LostReason.Value("LOST_REASON_" + reason.value), message=reason.message
                )
            )
