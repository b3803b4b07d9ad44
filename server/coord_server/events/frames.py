"""What an events stream yields, and how events are cut into replies gRPC will send.

A Subscribe stream (durable or volatile) yields frames: one :class:`SubscribedFrame` per start, then
:class:`EventsFrame`, :class:`GapFrame` and :class:`ProgressFrame` in order; the servicer turns each
into a protobuf message. One reply carries at most ``MAX_FRAME_EVENTS`` events and about
``MAX_FRAME_BYTES`` of data, whichever path assembled it: :func:`chunk_events` cuts a batch that is
too big, :func:`merge_events` joins small batches waiting in a buffer up to the same caps.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .store import StoredEvent
from .topics import StreamId

MAX_FRAME_EVENTS = 256
MAX_FRAME_BYTES = 1 << 20


@dataclass(frozen=True)
class SubscribedFrame:
    starts: list[tuple[str, StreamId]]
    open_ms: int


@dataclass(frozen=True)
class EventsFrame:
    events: list[StoredEvent]


@dataclass(frozen=True)
class ProgressFrame:
    cursors: list[tuple[str, StreamId]]


@dataclass(frozen=True)
class GapFrame:
    topic: str
    after_id: StreamId
    first_available_id: StreamId | None
    last_removed_id: StreamId | None


Frame = SubscribedFrame | EventsFrame | ProgressFrame | GapFrame


def chunk_events(events: list[StoredEvent]) -> list[list[StoredEvent]]:
    """``events`` cut into replies within the caps of :func:`merge_events` (each at least one event);
    ``[events]`` itself, not a copy, when it fits in one."""
    chunks: list[list[StoredEvent]] = []
    size = 0
    for event in events:
        if not chunks or len(chunks[-1]) >= MAX_FRAME_EVENTS or size >= MAX_FRAME_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(event)
        size += len(event.data)
    return [events] if len(chunks) == 1 else chunks


def merge_events(first: EventsFrame, buffer: deque[Any]) -> list[StoredEvent]:
    """``first``'s events and those of the EventsFrames right behind it in ``buffer`` (taken from it),
    up to MAX_FRAME_EVENTS events and about MAX_FRAME_BYTES of data: one reply, never one gRPC
    would refuse to send."""
    events = first.events
    size = -1
    while (
        buffer
        and isinstance(buffer[0], EventsFrame)
        and len(events) + len(buffer[0].events) <= MAX_FRAME_EVENTS
    ):
        if size < 0:
            size = sum(len(e.data) for e in events)
        if size >= MAX_FRAME_BYTES:
            break
        more = buffer.popleft()
        # A copy only when merging: an unmerged batch stays the very list the feed handed to every
        # subscriber, which the transport then encodes once for all of them.
        events = events + more.events
        size += sum(len(e.data) for e in more.events)
    return events
