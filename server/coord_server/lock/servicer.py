"""LockService transport: proto -> validated dataclasses -> store -> proto. No Redis calls here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2

from coord.lock.v1 import lock_pb2, lock_pb2_grpc

from .._grpc import rpc
from .._proto import duration_ms, duration_of_ms, timestamp_ms
from ..errors import BackendUnavailable, invalid
from ..validation import Limits
from .store import (
    AcquireResult,
    Denial,
    ExtendOutcome,
    Grant,
    Holder,
    LockRequest,
    LockStore,
    Mode,
    ReleaseOutcome,
)

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
_LOST_MESSAGE = {
    lock_pb2.LOST_REASON_EXPIRED: "no heartbeat renewed the lease before it ran out",
    lock_pb2.LOST_REASON_NOT_HELD: "the grant no longer exists (released or expired)",
    lock_pb2.LOST_REASON_BACKEND_UNAVAILABLE: "Redis could not be reached to renew the lease in time",
}


@dataclass(frozen=True)
class LockLimits:
    """Input limits of the Lock service: the shared ones plus the default lock TTL."""

    common: Limits
    default_ttl_ms: int


class LockServicer(lock_pb2_grpc.LockServiceServicer):
    def __init__(self, store: LockStore, limits: LockLimits) -> None:
        self._store = store
        self._limits = limits

    # -- unary RPCs --------------------------------------------------------------------------------

    @rpc
    async def Acquire(self, request: lock_pb2.AcquireRequest, context: Ctx) -> lock_pb2.AcquireResponse:
        lock, wait_s = self._lock_request("", request)
        return _acquire_pb(await self._store.acquire(lock, wait_s))

    @rpc
    async def Release(self, request: lock_pb2.ReleaseRequest, context: Ctx) -> lock_pb2.ReleaseResponse:
        name = self._limits.common.key("name", request.name)
        outcome = await self._store.release(name, _token("lock_token", request.lock_token))
        return lock_pb2.ReleaseResponse(outcome=_release_pb(outcome))

    @rpc
    async def Extend(self, request: lock_pb2.ExtendRequest, context: Ctx) -> lock_pb2.ExtendResponse:
        name = self._limits.common.key("name", request.name)
        token = _token("lock_token", request.lock_token)
        ttl = self._ttl_ms("ttl", request.ttl)
        result = await self._store.extend(name, token, ttl, request.resume)
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
        info = await self._store.describe(name, DESCRIBE_MAX_HOLDERS)
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
        await self._hold(context)

    async def _hold(self, context: Ctx) -> None:
        first = await context.read()
        if first is EOF:
            return
        assert isinstance(first, lock_pb2.HoldRequest)
        if first.WhichOneof("kind") != "acquire":
            raise invalid("acquire", "the first message of a Hold stream must be acquire")
        lock, wait_s = self._lock_request("acquire.", first.acquire)
        inbox: asyncio.Queue[lock_pb2.HoldRequest | None] = asyncio.Queue()  # None: the client is done
        reader = asyncio.create_task(_read_into(context, inbox))
        try:
            grant = await self._hold_wait(context, lock, wait_s, inbox)
            if grant is not None:
                await self._hold_granted(context, lock, grant, inbox)
        finally:
            reader.cancel()

    async def _hold_wait(
        self,
        context: Ctx,
        lock: LockRequest,
        wait_s: float,
        inbox: asyncio.Queue[lock_pb2.HoldRequest | None],
    ) -> Grant | None:
        """Wait for the grant while watching the client: a release or the end of the stream gives up."""

        async def queued(denial: Denial) -> None:
            await context.write(
                lock_pb2.HoldResponse(
                    queued=lock_pb2.HoldQueued(
                        position=denial.queue_position, holders=[_holder_pb(h) for h in denial.holders]
                    )
                )
            )

        acquiring = asyncio.create_task(self._store.acquire(lock, wait_s, queued))
        try:
            while True:
                getting = asyncio.create_task(inbox.get())
                await asyncio.wait({acquiring, getting}, return_when=asyncio.FIRST_COMPLETED)
                if acquiring.done():
                    getting.cancel()
                    break
                message = getting.result()
                if message is None or message.WhichOneof("kind") == "release":
                    acquiring.cancel()  # leaves the queue; a grant that raced is released
                    with contextlib.suppress(asyncio.CancelledError):
                        await acquiring
                    if message is not None:
                        await context.write(lock_pb2.HoldResponse(not_acquired=lock_pb2.HoldNotAcquired()))
                    return None
                # Heartbeats while queued are ignored.
        finally:
            if not acquiring.done():
                acquiring.cancel()
        result = acquiring.result()
        if result.grant is None:
            assert result.denial is not None
            await context.write(
                lock_pb2.HoldResponse(
                    not_acquired=lock_pb2.HoldNotAcquired(
                        holders=[_holder_pb(h) for h in result.denial.holders],
                        queue_position=result.denial.queue_position,
                    )
                )
            )
            return None
        return result.grant

    async def _hold_granted(
        self, context: Ctx, lock: LockRequest, grant: Grant, inbox: asyncio.Queue[lock_pb2.HoldRequest | None]
    ) -> None:
        """Keep the grant while the client heartbeats; release it the moment the stream ends."""
        loop = asyncio.get_running_loop()
        held = True
        try:
            await context.write(lock_pb2.HoldResponse(acquired=_grant_pb(grant)))
            lease_end = loop.time() + grant.valid_for_ms / 1000
            renew_failed = False
            while True:
                try:
                    message = await asyncio.wait_for(inbox.get(), max(0.0, lease_end - loop.time()))
                except TimeoutError:
                    reason = (
                        lock_pb2.LOST_REASON_BACKEND_UNAVAILABLE
                        if renew_failed
                        else lock_pb2.LOST_REASON_EXPIRED
                    )
                    await self._lost(context, reason)
                    return
                if message is None:
                    return  # the client closed its side: released in finally
                kind = message.WhichOneof("kind")
                if kind == "release":
                    outcome = await self._store.release(lock.name, grant.lock_token)
                    held = False
                    await context.write(
                        lock_pb2.HoldResponse(released=lock_pb2.HoldReleased(outcome=_release_pb(outcome)))
                    )
                    return
                if kind == "acquire":
                    raise invalid("acquire", "only the first message of a Hold stream may be acquire")
                beat_ms = duration_ms("heartbeat.ttl", message.heartbeat.ttl)
                ttl = self._limits.common.ttl_ms("heartbeat.ttl", beat_ms) if beat_ms else lock.ttl_ms
                try:
                    result = await self._store.extend(lock.name, grant.lock_token, ttl)
                except BackendUnavailable:
                    renew_failed = True  # keep the old lease end; Lost follows if it runs out
                    continue
                if not result.outcome.holds:
                    held = False
                    reason = (
                        lock_pb2.LOST_REASON_EXPIRED
                        if result.outcome is ExtendOutcome.EXPIRED
                        else lock_pb2.LOST_REASON_NOT_HELD
                    )
                    await self._lost(context, reason)
                    return
                renew_failed = False
                lease_end = loop.time() + result.valid_for_ms / 1000
                await context.write(
                    lock_pb2.HoldResponse(
                        renewed=lock_pb2.HoldRenewed(
                            expire_time=timestamp_ms(result.expire_ms),
                            valid_for=duration_of_ms(result.valid_for_ms),
                            fencing_token=result.fencing_token,
                        )
                    )
                )
        finally:
            if held:
                # Released at once, also when the stream broke or was cancelled (outside its deadline).
                self._store.detach(self._store.release(lock.name, grant.lock_token))

    async def _lost(self, context: Ctx, reason: lock_pb2.LostReason.ValueType) -> None:
        await context.write(
            lock_pb2.HoldResponse(lost=lock_pb2.HoldLost(reason=reason, message=_LOST_MESSAGE[reason]))
        )

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
        wait_ms = duration_ms(prefix + "wait", request.wait)
        if wait_ms > self._limits.common.max_ttl_ms:
            raise invalid(
                prefix + "wait", f"must be at most {self._limits.common.max_ttl_ms} ms (got {wait_ms} ms)"
            )
        owner = request.owner
        if len(owner.encode("utf-8", "surrogatepass")) > MAX_OWNER_BYTES:
            raise invalid(prefix + "owner", f"must be at most {MAX_OWNER_BYTES} bytes")
        if any(c in owner for c in "\x00\r\n"):
            raise invalid(prefix + "owner", "must not contain NUL, CR or LF characters")
        return LockRequest(name, mode, limit, ttl, owner), wait_ms / 1000

    def _ttl_ms(self, field: str, value: duration_pb2.Duration) -> int:
        millis = duration_ms(field, value)
        return self._limits.common.ttl_ms(field, millis) if millis else self._limits.default_ttl_ms


async def _read_into(context: Ctx, inbox: asyncio.Queue[lock_pb2.HoldRequest | None]) -> None:
    """Move client messages into ``inbox``; ``None`` marks the end (closed or broken stream)."""
    try:
        while True:
            message = await context.read()
            if message is EOF:
                break
            inbox.put_nowait(message)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.debug("Hold stream read failed", exc_info=True)
    inbox.put_nowait(None)


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
