"""The rules of gaps.py, case by case: when a position whose events are gone gets a Gap, and when not.

The behaviour against a real Redis is in test_loss_reported.py; this table names every case.
"""

from __future__ import annotations

import pytest

from coord_server.events.gaps import (
    LOOK_UP,
    Loss,
    group_loss,
    loss_at_cursor,
    loss_on_open,
    names_event,
    overtaken,
)
from coord_server.events.store import StreamPosition
from coord_server.events.topics import ZERO_ID, id_before_time

GONE = StreamPosition(exists=False)


def stream(
    first: tuple[int, int] | None, last: tuple[int, int], length: int, added: int | None
) -> StreamPosition:
    return StreamPosition(exists=True, length=length, first_id=first, last_id=last, entries_added=added)


INTACT = stream((10, 0), (20, 0), 5, 5)  # never trimmed: 5 events from 10-0 to 20-0
TRIMMED = stream((15, 0), (20, 0), 3, 5)  # the 2 oldest trimmed


@pytest.mark.parametrize(
    ("position", "after", "resumed", "expected"),
    [
        # A cursor (an event Coord handed out) on a topic that is gone, or younger than the cursor.
        (GONE, (12, 0), True, Loss(None)),
        (INTACT, (25, 0), True, Loss(None)),  # Redis lost the newest events (a replica behind)
        # Created again after the cursor (Redis restarted empty): first stored id newer, none removed.
        (INTACT, (5, 0), True, Loss((10, 0))),
        (TRIMMED, (12, 0), True, Loss((15, 0))),  # trimmed past the cursor
        (INTACT, (12, 0), True, LOOK_UP),  # within the stored ids: is its own event still there?
        (INTACT, (20, 0), True, LOOK_UP),
        (stream(None, (20, 0), 0, 5), (12, 0), True, Loss(None)),  # every stored event removed
        (stream(None, (20, 0), 0, 5), (20, 0), True, None),  # ... but none after the cursor
        # The beginning (0-0) and times name no event: only counted removals make a gap.
        (GONE, ZERO_ID, True, None),
        (INTACT, ZERO_ID, True, None),
        (TRIMMED, ZERO_ID, True, Loss((15, 0))),
        (INTACT, id_before_time(5), True, None),  # a pattern topic created after the stream opened
        (GONE, id_before_time(5), True, Loss(None)),
        (INTACT, id_before_time(5), False, None),  # START_POSITION_AT_TIME
        (TRIMMED, id_before_time(12), False, Loss((15, 0))),
        (GONE, id_before_time(12), False, None),
        # Redis before 7.0 does not count removals: a younger first id is taken as removal.
        (stream((10, 0), (20, 0), 5, None), id_before_time(5), False, Loss((10, 0))),
    ],
)
def test_loss_on_open(position, after, resumed, expected):
    assert loss_on_open(position, after, resumed=resumed) == expected


def test_an_event_deleted_by_hand_after_the_position_is_a_loss():
    deleted = StreamPosition(True, 4, (10, 0), (20, 0), last_removed_id=(15, 0), entries_added=5)
    assert loss_on_open(deleted, (12, 0), resumed=True) == Loss(None)  # the next one is looked up
    assert loss_on_open(deleted, (16, 0), resumed=True) == LOOK_UP


def test_loss_at_cursor_is_its_own_event_missing():
    assert loss_at_cursor((12, 0), (12, 0)) is None
    assert loss_at_cursor((12, 0), (13, 0)) == Loss((13, 0))  # lost: delivery continues at 13-0
    assert loss_at_cursor((12, 0), None) == Loss(None)


def test_names_event():
    assert names_event((12, 3))
    assert not names_event(ZERO_ID)
    assert not names_event(id_before_time(12))


def test_overtaken():
    assert not overtaken(INTACT, (12, 0))  # nothing removed
    assert not overtaken(TRIMMED, (15, 0))  # removed only what the reader had
    assert overtaken(TRIMMED, (12, 0))
    assert overtaken(GONE, (12, 0))
    assert overtaken(stream(None, (20, 0), 0, 5), (12, 0))


def test_group_loss_is_every_stored_event_newer_than_the_groups_position():
    assert group_loss((12, 0), (15, 0)) == Loss((15, 0))  # trimmed past what the group had read
    assert group_loss((12, 0), (12, 0)) is None  # its own last event is still stored
    assert group_loss((12, 0), (10, 0)) is None  # older events still stored: nothing after it removed
    assert group_loss((12, 0), None) is None  # nothing stored: nothing delivered next either
    assert group_loss(ZERO_ID, (15, 0)) is None  # read nothing yet: history it never asked for


def test_group_loss_is_exact_where_redis_counts_the_groups_lag():
    # Trimmed past the group's own last event, but it had read everything before: no loss.
    assert group_loss((12, 0), (15, 0), lag=3, length=3) is None
    assert group_loss((12, 0), (15, 0), lag=0, length=0) is None
    # Five undelivered entries removed: a loss.
    assert group_loss((12, 0), (15, 0), lag=8, length=3) == Loss((15, 0))
    # Redis can't tell (6.2, or XDEL in the range): the position rule, erring toward saying it.
    assert group_loss((12, 0), (15, 0), lag=None, length=3) == Loss((15, 0))
