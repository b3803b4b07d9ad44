"""What the sync and async event streams share: where a subscription stands and how it resumes, the
reconnection backoff, the silent-stream rule, and how a consumed event is settled. Nothing here waits:
:mod:`.sync` runs it with threads and blocking reads, :mod:`.aio` with tasks and ``await``.

A subscription reconnects by itself when the stream breaks (the server restarts, Redis is briefly
unreachable, or the server ended it because this reader fell behind) and resumes right after the last
event it handed out for each topic: no gap, no duplicate. History that retention removed before it
could be read is reported to ``on_gap``, never skipped silently.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from coord.events.v1 import events_pb2, events_pb2_grpc

from .._convert import Seconds, seconds, to_duration
from ..errors import from_grpc_error
from . import _codec
from .models import Event, Gap, Start

log = logging.getLogger("coord_client.events")

GapCallback = Callable[[Gap], Any]

# The server sends a Progress frame after every heartbeat interval of silence (5 s unless configured).
# A stream silent for several intervals while we wait on it is dead even if TCP does not say so (a
# paused or partitioned server): it is abandoned and resumed from the cursors.
_SERVER_DEFAULT_STALE = 30.0


def _id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class Cursors:
    """Where a subscription stands, per topic, and the request that resumes it."""

    def __init__(
        self,
        topics: tuple[str, ...],
        start: Start,
        after: Mapping[str, str] | str | None,
        heartbeat: Seconds | None,
        volatile: bool = False,
    ) -> None:
        if not topics:
            raise ValueError("subscribe needs at least one topic or pattern")
        if isinstance(after, str):
            if len(topics) != 1:
                raise ValueError("after=<id> needs exactly one topic; pass a {topic: id} mapping instead")
            after = {topics[0]: after}
        if not isinstance(start, datetime) and start not in _codec.STARTS:
            raise ValueError("start must be 'latest', 'earliest' or a datetime")
        self.topics = topics
        self.start = start
        self.positions: dict[str, str] = dict(after or {})
        self.heartbeat = seconds(heartbeat, "heartbeat")
        self.volatile = volatile
        self.open_time: timestamp_pb2.Timestamp | None = None

    def request(self) -> events_pb2.SubscribeRequest:
        if self.volatile:  # no history: every (re)connection starts live
            return events_pb2.SubscribeRequest(
                topics=list(self.topics),
                start=events_pb2.START_POSITION_LATEST,
                heartbeat_interval=to_duration(self.heartbeat),
                volatile=True,
            )
        request = events_pb2.SubscribeRequest(
            topics=list(self.topics),
            cursors=[events_pb2.TopicCursor(topic=t, after_id=i) for t, i in sorted(self.positions.items())],
            heartbeat_interval=to_duration(self.heartbeat),
        )
        if isinstance(self.start, datetime):
            request.start = events_pb2.START_POSITION_AT_TIME
            request.start_time.FromDatetime(self.start)
        elif self.start == "latest" and self.open_time is not None:
            # Resuming: topics first seen while disconnected are read from when the first stream opened.
            request.start = events_pb2.START_POSITION_AT_TIME
            request.start_time.CopyFrom(self.open_time)
        else:
            request.start = _codec.STARTS[str(self.start)]
        return request

    def advance(self, topic: str, event_id: str) -> None:
        if not event_id:
            return  # a volatile event has no position
        current = self.positions.get(topic)
        if current is None or _id_key(event_id) > _id_key(current):
            self.positions[topic] = event_id

    def frame(self, frame: events_pb2.SubscribeResponse, on_gap: GapCallback | None) -> list[Event]:
        """Apply a frame; returns its events (cursors advance only as events are handed out)."""
        kind = frame.WhichOneof("frame")
        if kind == "events":
            return [_codec.event(e) for e in frame.events.events]
        if kind == "subscribed":
            if self.open_time is None:
                self.open_time = frame.subscribed.open_time
            for start in frame.subscribed.starts:
                self.positions.setdefault(start.topic, start.after_id)
        elif kind == "progress":
            for cursor in frame.progress.cursors:
                self.advance(cursor.topic, cursor.after_id)
        elif kind == "gap":
            report_gap(_codec.gap(frame.gap), on_gap)
        return []


def report_gap(gap: Gap, on_gap: GapCallback | None) -> None:
    """Hand a Gap (of a subscription or a consumer group) to ``on_gap``, or log it: never silent."""
    if on_gap is not None:
        on_gap(gap)
    else:
        log.warning("events of %r after %s were removed before they could be read", gap.topic, gap.after_id)


class Backoff:
    """Seconds to wait before reconnecting: doubling from 50 ms to 2 s, jittered; reset by a frame."""

    def __init__(self) -> None:
        self.delay = 0.05

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, 2.0)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.delay = 0.05


class SubscriptionBase:
    """A subscription's state and decisions, for :class:`Subscription` and :class:`AsyncSubscription`.

    A stream that stays silent (no event, no Progress heartbeat) for three heartbeat intervals while
    the subscription waits on it is treated as dead and resumed; ``reconnects`` counts resumptions.
    The subclass sets ``_waiting_since`` (its clock's reading) while it waits for a frame.
    """

    def __init__(
        self,
        stub: events_pb2_grpc.EventsServiceStub,
        cursors: Cursors,
        on_gap: GapCallback | None,
        metadata: Callable[[], Any],
    ) -> None:
        self._stub = stub
        # Asked again for every (re)subscription: the client's token may have rotated meanwhile.
        self._metadata = metadata
        self._state = cursors
        self._on_gap = on_gap
        self._call: Any = None
        self._closed = False
        self._stale = False
        self._waiting_since: float | None = None
        self._backoff = Backoff()
        heartbeat = cursors.heartbeat
        self._stale_after = _SERVER_DEFAULT_STALE if heartbeat is None else max(1.0, 3 * heartbeat)
        self.reconnects = 0

    @property
    def cursors(self) -> dict[str, str]:
        """Topic -> id of the last event handed out (or a safe checkpoint): pass back as ``after``."""
        return dict(self._state.positions)

    def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    def _open(self) -> Any:
        """A new Subscribe call from the cursors (not yet silent)."""
        self._call = self._stub.Subscribe(self._state.request(), metadata=self._metadata())
        self._stale = False
        return self._call

    def _received(self, frame: events_pb2.SubscribeResponse) -> list[Event]:
        """The events of a frame; any frame proves the stream alive, so the backoff starts over."""
        self._backoff.reset()
        return self._state.frame(frame, self._on_gap)

    def _handed_out(self, event: Event) -> None:
        self._state.advance(event.topic, event.id)

    @property
    def _watch_every(self) -> float:
        return min(0.5, self._stale_after / 4)

    def _silent(self, call: Any, now: float) -> bool:
        """Cut ``call`` if it has been silent too long at ``now`` (the clock of ``_waiting_since``)."""
        since = self._waiting_since
        if since is None or now - since <= self._stale_after:
            return False
        self._stale = True
        call.cancel()
        return True

    def _resumes(self, exc: BaseException) -> bool:
        """After the stream failed with ``exc``: True to reconnect, False to end quietly (closed, or
        cancelled); an error that cannot be resumed is raised as a CoordError."""
        if self._closed:
            return False
        if self._stale:  # cut by the watchdog
            log.warning("subscription silent for %gs; resuming from its cursors", self._stale_after)
            return True
        assert isinstance(exc, grpc.RpcError)
        if exc.code() == grpc.StatusCode.CANCELLED:
            return False
        error = from_grpc_error(exc)
        if not _codec.subscription_resumable(error):
            raise error from exc
        log.info("subscription interrupted (%s); resuming", error)
        return True

    def _reconnect_delay(self) -> float:
        self.reconnects += 1
        return self._backoff.next()


def settled(event: Event, failure: Exception | None) -> events_pb2.ConsumeRequest:
    """The ack of an event its handler took, or the nack (redeliver at once) when it raised ``failure``."""
    if failure is None:
        return _codec.ack(event)
    log.error("handler failed on %s %s; nacked for redelivery", event.topic, event.id, exc_info=failure)
    return _codec.nack(event)
