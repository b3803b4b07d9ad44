"""One Hold stream's lease, with no transport: wait for the grant, keep it while the client
heartbeats, release it the moment the stream ends. No gRPC.

The transport hands :class:`Hold` the client's messages after the first (acquire) one as domain
requests, an async source that ends when the client closes its side or the stream breaks, and turns
each outcome it yields into a reply: :class:`Queued` while waiting, then :class:`NotAcquired` or
:class:`Granted`; after a grant, :class:`Renewed` per heartbeat, and at most one :class:`Released`
or :class:`Lost`. A grant the stream still holds when it ends (closed, broken, cancelled, refused,
or lost by expiry) is released at once, outside any RPC deadline, instead of waiting for its TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..errors import BackendUnavailable, CoordError
from .store import Denial, ExtendOutcome, ExtendResult, Grant, LockRequest, LockStore, ReleaseOutcome

# -- what the client asks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Heartbeat:
    """Renew the lease for ``ttl_ms`` (already within the limits), or for the lock's TTL when 0."""

    ttl_ms: int = 0


@dataclass(frozen=True)
class Release:
    """Give up: leave the queue while waiting, release the grant once held."""


@dataclass(frozen=True)
class Refused:
    """A message the stream may not carry (a second acquire, a heartbeat with an invalid TTL):
    ``error`` ends a granted stream; while waiting it is ignored, like any message but a release."""

    error: CoordError


@dataclass(frozen=True)
class Unreadable:
    """The client sent bytes that are not a message (MALFORMED_REQUEST): ``error`` ends the stream
    at once, waiting or granted (a grant is released), since nothing it sends can be trusted."""

    error: CoordError


Request = Heartbeat | Release | Refused | Unreadable

# -- what happens ------------------------------------------------------------------------------------


class LostReason(enum.Enum):
    """Why a granted stream ends without a release; ``message`` tells the client in words."""

    EXPIRED = "EXPIRED"
    NOT_HELD = "NOT_HELD"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"

    @property
    def message(self) -> str:
        return _LOST_MESSAGES[self]


_LOST_MESSAGES = {
    LostReason.EXPIRED: "no heartbeat renewed the lease before it ran out",
    LostReason.NOT_HELD: "the grant no longer exists (released or expired)",
    LostReason.BACKEND_UNAVAILABLE: "Redis could not be reached to renew the lease in time",
}


@dataclass(frozen=True)
class Queued:
    """The lock is taken: the stream waits in its queue (yielded once, before any grant)."""

    denial: Denial


@dataclass(frozen=True)
class NotAcquired:
    """The stream ends without a grant: the wait ran out (``denial`` says why), or the client gave
    up while queued (``denial`` is None)."""

    denial: Denial | None


@dataclass(frozen=True)
class Granted:
    grant: Grant


@dataclass(frozen=True)
class Renewed:
    result: ExtendResult


@dataclass(frozen=True)
class Released:
    outcome: ReleaseOutcome


@dataclass(frozen=True)
class Lost:
    reason: LostReason


Outcome = Queued | NotAcquired | Granted | Renewed | Released | Lost


# -- the lease ---------------------------------------------------------------------------------------


class Hold:
    """One Hold stream: iterate :meth:`outcomes`, and close it (``contextlib.aclosing``) so that a
    stream that ends early still releases at once. ``requests`` ends when the client is done."""

    def __init__(
        self, store: LockStore, lock: LockRequest, wait_s: float, requests: AsyncIterator[Request]
    ) -> None:
        self._store = store
        self._lock = lock
        self._wait_s = wait_s
        self._requests = requests
        self._inbox: asyncio.Queue[Request | None] = asyncio.Queue()  # None: the client is done
        self._grant: Grant | None = None

    async def outcomes(self) -> AsyncGenerator[Outcome, None]:
        """The stream's outcomes in order; raises the error of a :class:`Refused` (once granted) or
        :class:`Unreadable` request."""
        # The client is read all along, also while the grant is awaited: it may give up meanwhile.
        reader = asyncio.create_task(_read_into(self._requests, self._inbox))
        try:
            async with contextlib.aclosing(self._wait()) as waiting:
                async for outcome in waiting:
                    yield outcome
            if self._grant is not None:
                async with contextlib.aclosing(self._keep(self._grant)) as keeping:
                    async for outcome in keeping:
                        yield outcome
        finally:
            reader.cancel()

    async def _wait(self) -> AsyncGenerator[Outcome, None]:
        """Wait for the grant while watching the client: a release or the end of the stream gives up.
        Leaves the grant in ``_grant``."""
        loop = asyncio.get_running_loop()
        notice: asyncio.Future[Denial] = loop.create_future()
        told: asyncio.Future[None] = loop.create_future()

        async def on_queued(denial: Denial) -> None:
            # The store waits on only once the client has been told, so Queued precedes any grant.
            notice.set_result(denial)
            await told

        acquiring = asyncio.create_task(self._store.acquire(self._lock, self._wait_s, on_queued))
        getting: asyncio.Task[Request | None] | None = None
        try:
            while True:
                if getting is None:
                    getting = asyncio.create_task(self._inbox.get())
                watched: set[asyncio.Future[Any]] = {acquiring, getting}
                if not notice.done():
                    watched.add(notice)
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if notice.done() and not told.done():
                    yield Queued(notice.result())
                    told.set_result(None)
                    continue
                if acquiring.done():
                    getting.cancel()
                    break
                request, getting = getting.result(), None
                if request is None or isinstance(request, Release | Unreadable):
                    acquiring.cancel()  # leaves the queue; a grant that raced is released
                    with contextlib.suppress(asyncio.CancelledError):
                        await acquiring
                    if isinstance(request, Unreadable):
                        raise request.error
                    if request is not None:
                        yield NotAcquired(None)
                    return
                # Heartbeats while queued are ignored.
        finally:
            if not acquiring.done():
                acquiring.cancel()
            if getting is not None:
                getting.cancel()
        result = acquiring.result()
        if result.grant is None:
            yield NotAcquired(result.denial)
            return
        self._grant = result.grant

    async def _keep(self, grant: Grant) -> AsyncGenerator[Outcome, None]:
        """Keep the grant while the client heartbeats; release it the moment the stream ends."""
        loop = asyncio.get_running_loop()
        store, name = self._store, self._lock.name
        held = True
        try:
            yield Granted(grant)
            lease_end = loop.time() + grant.valid_for_ms / 1000
            renew_failed = False
            while True:
                try:
                    # A timeout scope, not asyncio.wait_for: on Python 3.11 that can swallow a
                    # cancellation arriving with a message, and the stream would outlive its caller.
                    async with asyncio.timeout(max(0.0, lease_end - loop.time())):
                        request = await self._inbox.get()
                except TimeoutError:
                    yield Lost(LostReason.BACKEND_UNAVAILABLE if renew_failed else LostReason.EXPIRED)
                    return
                if request is None:
                    return  # the client closed its side: released in finally
                if isinstance(request, Release):
                    outcome = await store.release(name, grant.lock_token)
                    held = False
                    yield Released(outcome)
                    return
                if isinstance(request, Refused | Unreadable):
                    raise request.error
                try:
                    result = await store.extend(name, grant.lock_token, request.ttl_ms or self._lock.ttl_ms)
                except BackendUnavailable:
                    renew_failed = True  # keep the old lease end; Lost follows if it runs out
                    continue
                if not result.outcome.holds:
                    held = False
                    expired = result.outcome is ExtendOutcome.EXPIRED
                    yield Lost(LostReason.EXPIRED if expired else LostReason.NOT_HELD)
                    return
                renew_failed = False
                lease_end = loop.time() + result.valid_for_ms / 1000
                yield Renewed(result)
        finally:
            if held:
                # Released at once, also when the stream broke or was cancelled (outside its deadline).
                store.detach(store.release(name, grant.lock_token))


async def _read_into(requests: AsyncIterator[Request], inbox: asyncio.Queue[Request | None]) -> None:
    """Move the client's requests into ``inbox``; ``None`` marks the end of them."""
    try:
        async for request in requests:
            inbox.put_nowait(request)
    finally:
        inbox.put_nowait(None)  # also if the source fails: either way no more requests come
