"""The sync Election API: ``Client(...).election(name)`` gives an :class:`Election`.

    with Client() as client:
        scheduler = client.election("scheduler")

        # Lead while the block runs: renewed in the background, resigned the moment the block ends.
        with scheduler.campaign(value=b"host-a") as leadership:
            while True:
                leadership.check()                  # raises LeadershipLost once it is over
                run_jobs(fence=leadership.term)      # the term is a fencing token
                leadership.proclaim(b"host-a:busy")  # followers see the new value

        scheduler.leader()                          # Leader(term=..., value=b"host-a", ...) or None
        for change in scheduler.observe():          # the state, then every change, in order
            print(change.kind, change.leader)

Everything but the waiting is shared with :mod:`.aio`: requests and parsing in :mod:`._codec`, the
campaign's state machine in :mod:`._campaign`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import grpc

from coord.election.v1 import election_pb2, election_pb2_grpc

from .._base import Transport
from .._call import SyncService
from .._convert import Seconds, seconds
from ..errors import CoordError, from_grpc_error
from ..events._stream import Backoff
from . import _codec
from ._campaign import Answer, CampaignBase, CampaignSpec, LeadershipState, stream_error
from .models import Leader, LeaderChange, LeaderState, LostCallback, ProclaimResult, ResignResult


class Leadership(LeadershipState):
    """A leadership held through a Campaign stream (sync); what ``with election.campaign(...)`` gives.

    ``term`` goes with every write only the leader may make. ``lost`` is a ``threading.Event`` set
    the moment the leadership is known to be gone (the server said so, the stream broke, a Proclaim
    was refused, or no renewal came back before the lease ran out); :meth:`check` raises
    :class:`LeadershipLost` from then on.
    """

    lost: threading.Event

    def __init__(
        self, pb: election_pb2.Leadership, anchor: float, election: Election, campaign: Campaign
    ) -> None:
        super().__init__(pb, anchor, campaign._refused)
        self.lost = threading.Event()
        self._election = election

    def proclaim(self, value: bytes | str, *, timeout: float | None = None) -> ProclaimResult:
        """Publish a new value, fenced by this term; raises :class:`LeadershipLost` if refused."""
        self.check()
        data = _codec.value_of(value)
        return self._proclaimed(
            self._election.proclaim(self.term, self.leader_token, data, timeout=timeout), data
        )


class Campaign(CampaignBase[Leadership]):
    """What :meth:`Election.campaign` returns: ``with`` it to lead while the block runs.

    Entering joins the election and waits until elected (up to ``wait``, else :class:`NotElected`).
    While the block runs, one thread sends keep-alives every ``keep_alive`` seconds (a third of the
    lease by default) and another reads the answers. Leaving the block resigns at once and waits for
    the server's confirmation (the stream is cut if it does not come within the call deadline, which
    ends the leadership too). If the leadership was lost and the block itself raised nothing, leaving
    it raises :class:`LeadershipLost` (``raise_on_lost=False`` turns that off).
    """

    _stop: threading.Event

    def __init__(self, election: Election, spec: CampaignSpec) -> None:
        super().__init__(spec, election._api._t.timeout)
        self._election = election
        self._stub = election._api._stub
        self._metadata = election._api._t.metadata
        self._requests: queue.SimpleQueue[election_pb2.CampaignRequest | None] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()  # the reader is done
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Leadership:
        self._requests.put(self._opening())
        call: Any = self._stub.Campaign(iter(self._requests.get, None), metadata=self._metadata)
        self._call = call
        expired = threading.Event()
        watchdog: threading.Timer | None = None
        if self._spec.wait is not None:

            def give_up() -> None:
                expired.set()
                call.cancel()  # the server takes the candidate out of the queue

            watchdog = threading.Timer(self._spec.wait, give_up)
            watchdog.daemon = True
            watchdog.start()
        elected: election_pb2.Leadership | None = None
        try:
            while elected is None:
                elected = self._elected(self._next())
        except CoordError:
            if expired.is_set():
                raise self._not_elected() from None
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if elected is None:
                self._requests.put(None)
                call.cancel()
        leadership = self._lead(elected, lambda pb, anchor: Leadership(pb, anchor, self._election, self))
        for target, label in ((self._reader, "reader"), (self._beater, "keep-alive")):
            thread = threading.Thread(target=target, name=f"coord-election-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return leadership

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._led()
        self._stop.set()
        self._threads[1].join()  # the keep-alive thread sends nothing from now on
        leading = self._close()
        if leading:
            self._requests.put(_codec.RESIGN)
        self._requests.put(None)
        if not leading or not self._finished.wait(self._timeout):
            self._call.cancel()  # a broken stream ends the leadership at once, too
        self._threads[0].join(self._timeout)
        self._closed(block_raised=exc_type is not None)

    def _next(self) -> Answer:
        try:
            response: election_pb2.CampaignResponse = next(self._call)
        except StopIteration:
            return None
        except grpc.RpcError as exc:
            return stream_error(exc)
        return response

    def _reader(self) -> None:
        try:
            while self._read(self._next()):
                pass
        finally:
            self._finished.set()

    def _beater(self) -> None:
        while (pause := self._pause()) is not None:
            if self._stop.wait(pause):
                return
            if self._beat_due():
                self._requests.put(_codec.KEEP_ALIVE)
        self._call.cancel()


class Observation:
    """What :meth:`Election.observe` returns: iterate it for :class:`LeaderChange` s, in order.

    The first is the current state (kind ``current``), unless it resumes ``after`` a revision. When
    the stream breaks (the server restarts, Redis is briefly unreachable) it reconnects by itself and
    resumes after the last change it handed out: no gap, no duplicate; changes the server no longer
    keeps come as a ``current`` change with ``gap`` set. ``revision`` is that resume point;
    ``reconnects`` counts resumptions. ``close()`` (or leaving its ``with`` block) ends it.
    """

    def __init__(self, api: ElectionAPI, name: str, after: str | None) -> None:
        self._api = api
        self._name = name
        self.revision = after
        self._request = _codec.observe_request(name, after)  # checks the arguments now
        self._call: Any = None
        self._closed = False
        self._backoff = Backoff()
        self.reconnects = 0

    def __enter__(self) -> Observation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    def __iter__(self) -> Iterator[LeaderChange]:
        while not self._closed:
            request = _codec.observe_request(self._name, self.revision)
            self._call = self._api._stub.Observe(request, metadata=self._api._t.metadata)
            try:
                for pb in self._call:
                    self._backoff.reset()
                    change = _codec.change(pb)
                    yield change
                    self.revision = change.revision
            except grpc.RpcError as exc:
                if self._closed or exc.code() == grpc.StatusCode.CANCELLED:
                    return
                if exc.code() not in _codec.RESUMABLE:
                    raise from_grpc_error(exc) from exc
            self.reconnects += 1
            time.sleep(self._backoff.next())


class Election:
    """One election, by name: ``client.election("scheduler")``. Cheap to make; holds nothing."""

    def __init__(self, api: ElectionAPI, name: str) -> None:
        self._api = api
        self.name = _codec.name_of(name)

    def __repr__(self) -> str:
        return f"<Election {self.name!r}>"

    def campaign(
        self,
        value: bytes | str = b"",
        *,
        ttl: Seconds | None = None,
        wait: Seconds | None = None,
        keep_alive: Seconds | None = None,
        raise_on_lost: bool = True,
        on_lost: LostCallback | None = None,
        timeout: float | None = None,
    ) -> Campaign:
        """Lead for the length of a ``with`` block (see :class:`Campaign`).

        ``value`` is what the leader publishes (its address...); ``ttl`` the lease (None: the
        server's default); ``wait`` how long to wait to be elected (None: as long as it takes);
        ``keep_alive`` the renewal interval (default: a third of the lease); ``on_lost`` is called
        with the :class:`LeadershipLost` error from a background thread when the leadership is lost.
        """
        spec = _spec(
            self.name,
            value,
            ttl=ttl,
            wait=wait,
            keep_alive=keep_alive,
            raise_on_lost=raise_on_lost,
            on_lost=on_lost,
            timeout=timeout,
        )
        return Campaign(self, spec)

    def leader(self, *, timeout: float | None = None) -> Leader | None:
        """Who leads now (None: nobody)."""
        return self._api.state(self.name, timeout=timeout).leader

    def state(self, *, timeout: float | None = None) -> LeaderState:
        """Who leads now, with the newest revision (to observe the changes after it)."""
        return self._api.state(self.name, timeout=timeout)

    def observe(self, *, after: str | None = None) -> Observation:
        """The current state, then every change of leadership (or the changes ``after`` a revision)."""
        return Observation(self._api, self.name, after)

    def proclaim(
        self, term: int, leader_token: str, value: bytes | str, *, timeout: float | None = None
    ) -> ProclaimResult:
        """Publish a new value for the leadership of ``term`` (falsy when it is not the current one)."""
        return self._api.proclaim(self.name, term, leader_token, value, timeout=timeout)

    def resign(self, term: int, leader_token: str, *, timeout: float | None = None) -> ResignResult:
        """End the leadership of ``term``; idempotent (falsy when it was not a leadership, or expired)."""
        return self._api.resign(self.name, term, leader_token, timeout=timeout)


class ElectionAPI(SyncService):
    """Sync access to ``coord.election.v1.ElectionService``: one method per unary RPC, by name, and
    :meth:`election` for the handle of one election. Never retried but Leader and Resign, when the
    service config says so."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport, election_pb2_grpc.ElectionServiceStub(transport.channel), _codec.SERVICE)

    def election(self, name: str) -> Election:
        return Election(self, name)

    def state(self, name: str, *, timeout: float | None = None) -> LeaderState:
        return self._send(_codec.leader(name), timeout)

    def proclaim(
        self, name: str, term: int, leader_token: str, value: bytes | str, *, timeout: float | None = None
    ) -> ProclaimResult:
        return self._send(_codec.proclaim(name, term, leader_token, value), timeout)

    def resign(
        self, name: str, term: int, leader_token: str, *, timeout: float | None = None
    ) -> ResignResult:
        return self._send(_codec.resign(name, term, leader_token), timeout)


def _spec(
    name: str,
    value: bytes | str,
    *,
    ttl: Seconds | None,
    wait: Seconds | None,
    keep_alive: Seconds | None,
    raise_on_lost: bool,
    on_lost: LostCallback | None,
    timeout: float | None,
) -> CampaignSpec:
    """A campaign's spec, its arguments checked (shared with :mod:`.aio`)."""
    return CampaignSpec(
        join=_codec.join(name, value, ttl),
        wait=seconds(wait, "wait"),
        keep_alive=seconds(keep_alive, "keep_alive", allow_zero=False),
        raise_on_lost=raise_on_lost,
        on_lost=on_lost,
        timeout=timeout,
    )


__all__ = ["Campaign", "Election", "ElectionAPI", "Leadership", "Observation"]
