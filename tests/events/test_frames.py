"""One reply never carries more than MAX_FRAME_EVENTS events or much more than MAX_FRAME_BYTES of data,
whichever path (durable, volatile, consumer group) assembled it: a bigger one gRPC would refuse."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest

from coord_server.events.frames import (
    MAX_FRAME_BYTES,
    MAX_FRAME_EVENTS,
    EventsFrame,
    ProgressFrame,
    chunk_events,
    merge_events,
)
from coord_server.events.store import StoredEvent
from coord_server.events.topics import ZERO_ID
from coord_server.events.wake import Wake

from .helpers import EARLIEST, publish_many, subscribe


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
    small = [event(1) for _ in range(3)]
    assert chunk_events(small)[0] is small  # fits one reply: the same list, shared, not a copy


def test_an_unmerged_batch_is_the_shared_list_and_merging_never_changes_it() -> None:
    # The feed hands one list to every subscriber; a reply built from it must neither copy it
    # needlessly (it is encoded once for all) nor grow it for the other subscribers.
    shared = [event(1), event(1)]
    alone: deque[Any] = deque([ProgressFrame([])])
    assert merge_events(EventsFrame(shared), alone) is shared
    behind: deque[Any] = deque([EventsFrame([event(2)])])
    merged = merge_events(EventsFrame(shared), behind)
    assert len(merged) == 3 and len(shared) == 2 and not behind


def test_a_catch_up_page_bigger_than_one_reply_arrives_split_and_in_order(stub) -> None:  # type: ignore[no-untyped-def]
    ids = publish_many(stub, "frames.big", [b"%d" % i for i in range(MAX_FRAME_EVENTS + 100)])
    stream = subscribe(stub, "frames.big", start=EARLIEST)  # one XRANGE page holds them all
    sizes: list[int] = []
    got: list[str] = []
    while len(got) < len(ids):
        frame = stream.next_of("events")
        sizes.append(len(frame.events))
        got += [e.id for e in frame.events]
    assert got == ids
    assert max(sizes) <= MAX_FRAME_EVENTS
    stream.cancel()


def test_wake_returns_when_set_or_when_its_time_is_up() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        wake = Wake()
        # Nobody sets it: its own timer ends the wait, never sooner. The loop runs timers in the order
        # they fall due, however late it gets to them: one due earlier has run by then.
        ran: list[str] = []
        loop.call_later(0.01, ran.append, "due earlier")
        await wake.wait(0.05)
        assert ran == ["due earlier"]
        # Set while it sleeps for an hour: the sleeper is done on the loop's next turn.
        waiting = asyncio.ensure_future(wake.wait(3600))
        await asyncio.sleep(0)
        assert not waiting.done()
        wake.set()
        await asyncio.sleep(0)
        assert waiting.done()
        # Still set: returns at once, without suspending.
        with pytest.raises(StopIteration):
            wake.wait(3600).send(None)
        wake.clear()
        waiting = asyncio.ensure_future(wake.wait(3600))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not waiting.done()  # cleared: it sleeps
        wake.set()
        await asyncio.sleep(0)
        assert waiting.done()

    asyncio.run(scenario())


def test_a_batch_shared_by_subscribers_is_encoded_once_and_decodes_as_built() -> None:
    from coord.events.v1 import events_pb2
    from coord_server.events.servicer import _EncodedBatches, _frame_pb

    encoded = _EncodedBatches()
    shared = [StoredEvent("t", (5, 1), b"payload", "text/plain", {"k": "v"})]
    first = encoded.frame(EventsFrame(shared))
    assert isinstance(first, bytes)
    assert encoded.frame(EventsFrame(shared)) is first  # the next subscriber: no second encoding
    assert events_pb2.SubscribeResponse.FromString(first) == _frame_pb(EventsFrame(shared))
    copy = list(shared)
    assert encoded.frame(EventsFrame(copy)) is not first  # another list is another batch
    assert not isinstance(encoded.frame(ProgressFrame([])), bytes)
