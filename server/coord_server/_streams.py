"""The long-lived streams open on a server, so that its shutdown ends them at once.

A graceful shutdown gives calls in flight the grace period to finish (``server.stop(grace)``). A
stream (Subscribe, Consume, Hold, CheckStream...) is not "in flight" the same way: it would hold the
shutdown for the whole grace period, and its client would only learn of it at the end. So the app
first calls :meth:`Streams.end`: every open stream is ended at once and its client told the server is
shutting down (UNAVAILABLE, reason SERVER_SHUTTING_DOWN, with RetryInfo), so that it resumes on
another server. How a stream ends depends on what it does:

- a stream that answers requests (answer_each: GetStream, SetStream, CheckStream, CheckBatchStream)
  *drains*: it stops reading, answers what it has read, then ends; a request left without an answer
  was never applied, so the client may send it again elsewhere;
- any other stream (a subscription, a lease) is cancelled: its own cleanup runs as when its client
  goes away (a Hold releases its lock, a Consume's unacknowledged events are delivered again).

``_grpc.add_service`` registers every streaming method's calls here; nothing in this module knows gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import weakref
from collections.abc import Callable

_BY_SERVER: weakref.WeakKeyDictionary[object, Streams] = weakref.WeakKeyDictionary()


class OpenStream:
    """One stream's call, as long as it runs: ended by cancelling its task, unless it set ``drain``."""

    __slots__ = ("drain", "ended", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.ended = False  # set by Streams.end: the cancellation (or the drain) is the shutdown's
        self.drain: Callable[[], None] | None = None

    def end(self) -> None:
        self.ended = True
        if self.drain is not None:
            self.drain()
        else:
            self.task.cancel()


# The stream whose call is running in this task (set by the stream's wrapper; answer_each reads it).
_CURRENT: contextvars.ContextVar[OpenStream | None] = contextvars.ContextVar("coord_stream", default=None)


def current() -> OpenStream | None:
    """The open stream of the call running in this context, if it is a stream."""
    return _CURRENT.get()


class Streams:
    """The streams open on one server (owned by it: :func:`of`)."""

    def __init__(self) -> None:
        self._open: set[OpenStream] = set()
        self.ending = False

    def __len__(self) -> int:
        return len(self._open)

    def enter(self) -> tuple[OpenStream, contextvars.Token[OpenStream | None]]:
        """Register the stream whose call runs in the current task; :meth:`leave` it when it ends."""
        task = asyncio.current_task()
        assert task is not None, "a stream's call runs in a task"
        stream = OpenStream(task)
        self._open.add(stream)
        return stream, _CURRENT.set(stream)

    def leave(self, stream: OpenStream, token: contextvars.Token[OpenStream | None]) -> None:
        self._open.discard(stream)
        with contextlib.suppress(ValueError):  # a generator finalized from another context (GC)
            _CURRENT.reset(token)

    def end(self) -> int:
        """End every open stream now (see the module docstring); later ones are refused. Returns how
        many were open."""
        self.ending = True
        open_now = list(self._open)
        for stream in open_now:
            stream.end()
        return len(open_now)


def of(server: object) -> Streams:
    """The streams of ``server`` (made on first use; they go with the server)."""
    streams = _BY_SERVER.get(server)
    if streams is None:
        streams = _BY_SERVER[server] = Streams()
    return streams
