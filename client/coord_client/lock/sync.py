"""The sync Lock API: :class:`LockAPI`, reached as ``Client(...).lock``, and its context managers.

    with Client() as client:
        # Held through a Hold stream: renewed in the background, released the moment the block ends.
        with client.lock("jobs/nightly", ttl=10, wait=30) as lease:
            for chunk in work:
                lease.check()                       # raises LockLost once the grant is gone
                write(chunk, fence=lease.fencing_token)

        # Plain Acquire/Release: the block must finish within the TTL.
        with client.lock.acquired("report", ttl=60, wait=5) as grant:
            ...

        # A semaphore of 3 permits; a read/write lock.
        with client.lock.semaphore("gpu", 3, wait=60): ...
        with client.lock.read_lock("config"): ...
        with client.lock.write_lock("config"): ...

        result = client.lock.acquire("L", ttl=30)  # one method per RPC, too
        if result:
            client.lock.release("L", result.lock_token)

Everything but the waiting is shared with :mod:`.aio`: requests and parsing in :mod:`._codec`, the
Hold's state machine in :mod:`._lease`, the non-sending methods in :mod:`._api`.
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType
from typing import Any

import grpc

from coord.lock.v1 import lock_pb2, lock_pb2_grpc

from .._base import Transport
from .._call import SyncService
from .._convert import Seconds
from ..errors import CoordError, DeadlineExceeded
from . import _codec
from ._api import AcquiredBase, LockAPIBase
from ._lease import HEARTBEAT, RELEASE, Answer, HoldBase, HoldSpec, LeaseState, stream_error
from .models import AcquireResult, ExtendResult, Grant, LockInfo, Mode, ReleaseResult


class Lease(LeaseState):
    """A lock held through a Hold stream (sync); what ``with client.lock(...) as lease`` gives.

    ``fencing_token`` goes with every write to the protected resource. ``lost`` is a
    ``threading.Event`` set the moment the grant is known to be gone (the server said so, the stream
    broke, or no renewal came back before the lease ran out); :meth:`check` raises :class:`LockLost`
    from then on. ``renewals`` counts the heartbeats the server confirmed.
    """

    lost: threading.Event

    def __init__(self, grant: Grant) -> None:
        super().__init__(grant)
        self.lost = threading.Event()


class Hold(HoldBase[Lease]):
    """What :meth:`LockAPI.hold` returns: ``with`` it to hold the lock through a Hold stream.

    Entering sends the acquire and waits (up to ``wait``) for the grant, raising
    :class:`LockNotAcquired` without one. While the block runs, one thread sends heartbeats every
    ``heartbeat`` seconds (a third of the lease by default) and another reads the answers. Leaving
    the block releases the lock at once and waits for the server's confirmation (the stream is cut
    if it does not come within the call deadline, which releases it too). If the lease was lost and
    the block itself raised nothing, leaving it raises :class:`LockLost` (``raise_on_lost=False``
    turns that off): work done in the block may not have been protected.
    """

    _stop: threading.Event

    def __init__(self, stub: lock_pb2_grpc.LockServiceStub, transport: Transport, spec: HoldSpec) -> None:
        super().__init__(spec, transport.timeout)
        self._stub = stub
        self._metadata = transport.metadata
        self._requests: queue.SimpleQueue[lock_pb2.HoldRequest | None] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()  # the reader is done
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Lease:
        self._requests.put(self._opening())
        call: Any = self._stub.Hold(iter(self._requests.get, None), metadata=self._metadata)
        self._call = call
        expired = threading.Event()

        def give_up() -> None:
            expired.set()
            call.cancel()

        watchdog = threading.Timer(self._answer_within, give_up)
        watchdog.daemon = True
        watchdog.start()
        grant: lock_pb2.Grant | None = None
        try:
            while grant is None:
                grant = self._granted(self._next())
        except CoordError as error:
            if expired.is_set():
                raise DeadlineExceeded("no answer to the Hold request in time") from error
            raise
        finally:
            watchdog.cancel()
            if grant is None:  # end the request stream (freeing its thread) and the call
                self._requests.put(None)
                call.cancel()  # the server leaves the queue, or releases a grant that raced
        lease = self._hold(grant, Lease)
        for target, label in ((self._reader, "reader"), (self._beater, "heartbeat")):
            thread = threading.Thread(target=target, name=f"coord-lock-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return lease

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._held()
        self._stop.set()
        self._threads[1].join()  # the heartbeat thread sends nothing from now on
        held = self._close()
        if held:
            self._requests.put(RELEASE)
        self._requests.put(None)
        if not held or not self._finished.wait(self._timeout):
            self._call.cancel()  # a broken stream is released by the server at once, too
        self._threads[0].join(self._timeout)
        self._closed(block_raised=exc_type is not None)

    def _next(self) -> Answer:
        try:
            response: lock_pb2.HoldResponse = next(self._call)
        except StopIteration:
            return None
        except grpc.RpcError as exc:
            return stream_error(exc)
        return response

    def _reader(self) -> None:
        """The reader thread: renewals move the deadline; lost, an error or the end mark the loss."""
        try:
            while self._read(self._next()):
                pass
        finally:
            self._finished.set()

    def _beater(self) -> None:
        """The heartbeat thread: renew every interval; cut the stream of a lease that ran out."""
        while (pause := self._pause()) is not None:
            if self._stop.wait(pause):
                return
            if self._beat_due():
                self._requests.put(HEARTBEAT)
        self._call.cancel()


class Acquired(AcquiredBase):
    """What :meth:`LockAPI.acquired` returns: Acquire on enter (or :class:`LockNotAcquired`), Release
    on exit. Nothing renews the lease: the block must end within the TTL."""

    def __init__(self, api: LockAPI, kwargs: dict[str, Any]) -> None:
        super().__init__(kwargs)
        self._api = api

    def __enter__(self) -> Grant:
        return self._take(self._api.acquire(**self._kwargs))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        grant = self._taken()
        try:
            self.release_result = self._api.release(grant.name, grant.lock_token)
        except CoordError:
            if exc_type is None:
                raise  # otherwise the block's own exception matters more; the lease ends by its TTL


class LockAPI(LockAPIBase[Hold, Acquired], SyncService):
    """Sync access to ``coord.lock.v1.LockService``; reached as ``Client(...).lock``.

    ``client.lock(name, ...)`` is :meth:`hold`. Every method takes ``timeout`` (seconds for the
    whole call; an Acquire that waits gets ``wait`` on top of the client's default). Failures raise
    :class:`coord_client.CoordError` subclasses; bad arguments raise ValueError or TypeError before
    anything is sent. ``mode`` is ``"exclusive"`` or ``"shared"``; left out, it is ``"shared"`` when
    a ``limit`` is given (a semaphore) and ``"exclusive"`` otherwise. ``ttl`` None means the
    server's default lease; ``wait`` None or 0 means a try-lock.

    Retries: Acquire, Extend and Hold are never retried (a second attempt could make a second grant
    or report something else); Release (idempotent with its token) and Describe are retried on
    UNAVAILABLE.
    """

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport, lock_pb2_grpc.LockServiceStub(transport.channel), _codec.SERVICE)

    def acquire(
        self,
        name: str,
        ttl: Seconds | None = None,
        *,
        wait: Seconds | None = None,
        mode: Mode | str | None = None,
        limit: int | None = None,
        owner: str = "",
        timeout: float | None = None,
    ) -> AcquireResult:
        """Ask for a grant; never retried. Not getting it is a falsy result with the holders."""
        request = _codec.acquire_request(name, ttl=ttl, wait=wait, mode=mode, limit=limit, owner=owner)
        call = _codec.acquire(request)
        return self._send(call, _codec.acquire_timeout(call, self._t.timeout, timeout))

    def release(self, name: str, lock_token: str, *, timeout: float | None = None) -> ReleaseResult:
        """End a grant; idempotent with its token, so retried on UNAVAILABLE."""
        return self._send(_codec.release(name, lock_token), timeout)

    def extend(
        self,
        name: str,
        lock_token: str,
        ttl: Seconds | None = None,
        *,
        resume: bool = False,
        timeout: float | None = None,
    ) -> ExtendResult:
        """Give a live grant a new lease counted from now (``resume``: revive an expired one if no
        other grant happened since)."""
        return self._send(_codec.extend(name, lock_token, ttl, resume), timeout)

    def describe(self, name: str, *, timeout: float | None = None) -> LockInfo:
        """A snapshot of the lock: holders, mode, limit, queue length, newest fencing token."""
        return self._send(_codec.describe(name), timeout)

    def _new_hold(self, spec: HoldSpec) -> Hold:
        return Hold(self._stub, self._t, spec)

    def _new_acquired(self, kwargs: dict[str, Any]) -> Acquired:
        return Acquired(self, kwargs)


__all__ = ["Acquired", "Hold", "Lease", "LockAPI"]
