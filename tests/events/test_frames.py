"""One reply never carries more than MAX_FRAME_EVENTS events or much more than MAX_FRAME_BYTES of data,
whichever path (durable, volatile, consumer group) assembled it: a bigger one gRPC would refuse."""

from __future__ import annotations

from collections import deque
from typing import Any

from coord_server.events.hub import (
    MAX_FRAME_BYTES,
    MAX_FRAME_EVENTS,
    EventsFrame,
    ProgressFrame,
    chunk_events,
    merge_events,
)
from coord_server.events.store import StoredEvent
from coord_server.events.topics import ZERO_ID


def event(size: int) -> StoredEvent:
    return StoredEvent("t", ZERO_ID, b"x" * size, "", {})


def test_merging_stops_at_the_byte_cap() -> None:
    big = MAX_FRAME_BYTES // 2
    buffer: deque[Any] = deque(EventsFrame([event(big)]) for _ in range(5))
    merged = merge_events(buffer.popleft(), buffer)
    assert len(merged) == 2 and len(buffer) == 3


def test_merging_stops_at_the_event_cap_and_at_other_frames() -> None:
    buffer: deque[Any] = deque(EventsFrame([event(1)]) for _ in range(MAX_FRAME_EVENTS + 10))
    assert len(merge_events(buffer.popleft(), buffer)) == MAX_FRAME_EVENTS
    buffer = deque([EventsFrame([event(1)]), ProgressFrame([]), EventsFrame([event(1)])])
    assert len(merge_events(buffer.popleft(), buffer)) == 1 and len(buffer) == 2


def test_chunks_respect_both_caps_and_keep_every_event_in_order() -> None:
    events = [event(MAX_FRAME_BYTES // 2) for _ in range(5)] + [event(1) for _ in range(600)]
    chunks = chunk_events(events)
    assert [e for chunk in chunks for e in chunk] == events
    assert all(len(c) <= MAX_FRAME_EVENTS for c in chunks)
    assert all(sum(len(e.data) for e in c[:-1]) < MAX_FRAME_BYTES for c in chunks)
    assert len(chunks[0]) == 2
