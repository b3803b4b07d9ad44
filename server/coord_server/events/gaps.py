"""When a Subscribe stream must send a Gap: the rules, with no I/O.

Events after a reader's position can vanish in three ways, and Redis names none of the ids:

- **retention** removes the oldest events (MAXLEN and MINID trimming on publish; a topic nobody
  publishes to for the max age expires whole);
- **Redis loses data**: it restarted without persistence (the topic comes back empty or younger), or a
  replica that was behind was promoted (the newest events are missing, and new ones are appended
  after the older ones that survived);
- an event deleted by hand (XDEL; Redis 7 reports the newest one deleted).

So the rules compare a position with what XINFO STREAM says (:class:`~.store.StreamPosition`): the
first stored id, the last id ever generated, and, on Redis 7, how many entries were ever added. A
*cursor* is an event id Coord handed out (an event's, a Progress's, a Subscribed's): that event was
stored once, so if it and everything around it is gone, something was lost. A *time position*
(``START_POSITION_AT_TIME``, or the start of a topic a pattern found while the stream was open) names
no event; only removals that Redis counts make a gap there.

What the rules cannot tell apart, they report: when the newest event retention removed was the
cursor's own, nothing after it was lost in fact, but a Gap comes (Redis does not say). A topic that
expired and was created again, or an id made up by hand that names no event, also gets a Gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from .store import StreamPosition
from .topics import ZERO_ID, StreamId

_TIME_SEQUENCE = (1 << 64) - 1  # the sequence of topics.id_before_time: no stored event has it


@dataclass(frozen=True)
class Loss:
    """Events after the reader's position are gone; delivery continues at ``first_available``, the
    first stored event after the position (None: not known from the position alone; there may be
    none yet)."""

    first_available: StreamId | None


# loss_on_open's answer when only the stored events can tell: is the cursor's own event still there?
LOOK_UP: Final = "look up"
LookUp = Literal["look up"]


def names_event(position: StreamId) -> bool:
    """Whether ``position`` is an event id, not the beginning (0-0) or a time (``id_before_time``)."""
    return position != ZERO_ID and position[1] != _TIME_SEQUENCE


def loss_on_open(stream: StreamPosition, after: StreamId, *, resumed: bool) -> Loss | LookUp | None:
    """Whether a stream opening at ``after`` (a client's cursor when ``resumed``, else a start time)
    missed events, from where the topic stands now: a :class:`Loss`, None, or :data:`LOOK_UP` when
    the cursor lies within the stored ids and only :func:`loss_at_cursor` can tell."""
    if not stream.exists:
        # Expired with everything after the cursor, or lost with the rest of Redis's data.
        return Loss(None) if resumed and after != ZERO_ID else None
    if stream.last_removed_id is not None and stream.last_removed_id > after:
        first = stream.first_id
        return Loss(first if first is not None and first > after else None)  # deleted by hand
    if not (resumed and names_event(after)):
        return Loss(stream.first_id) if trimmed_past(stream, after) else None
    # A cursor: its event was stored in this topic once.
    if stream.last_id < after:
        return Loss(None)  # the stream is younger than the cursor: Redis lost its newest events
    if stream.first_id is None:
        return Loss(None) if after < stream.last_id else None  # every stored event is gone
    if stream.first_id > after:
        # Trimmed past the cursor, or created again after the cursor's time (Redis restarted empty,
        # or the topic expired): Redis's counts only know this incarnation, so none are needed.
        return Loss(stream.first_id)
    return LOOK_UP


def loss_at_cursor(after: StreamId, at_or_after: StreamId | None) -> Loss | None:
    """For :data:`LOOK_UP`: ``at_or_after`` is the first stored id at or after the cursor. The
    cursor's own event missing from the middle of the stream means Redis lost it (a replica that was
    behind took over, and newer events were appended after the older ones)."""
    if at_or_after == after:
        return None
    return Loss(at_or_after)


def trimmed_past(stream: StreamPosition, after: StreamId) -> bool:
    """Whether retention removed events after ``after``: trimming removes the oldest first, so that
    is when the first stored id is newer than ``after`` and Redis removed some (before 7.0 Redis does
    not count them, so a younger first id is taken as removal)."""
    if not stream.exists:
        return False
    removed = stream.entries_added is None or stream.entries_added > stream.length
    if stream.first_id is None:
        return removed and after < stream.last_id
    return removed and stream.first_id > after


def overtaken(stream: StreamPosition, after: StreamId) -> bool:
    """Whether a reader that has everything up to ``after`` (a subscriber catching up, or a topic's
    live reader) was overtaken by trimming: events after ``after`` were removed before it read them.
    A topic that vanished under a reader lost what the reader had not read."""
    return True if not stream.exists else trimmed_past(stream, after)


def group_loss(
    last_delivered: StreamId, first_stored: StreamId | None, lag: int | None = None, length: int = 0
) -> Loss | None:
    """Whether retention removed events a consumer group never read: the group had everything up to
    ``last_delivered`` delivered, and ``first_stored`` is the oldest event stored now (both read in one
    atomic step with the group's next read).

    Where Redis counts the group's ``lag`` (entries added but not yet delivered to it; Redis 7), the
    answer is exact: trimming removes the oldest entries first, so a lag above the stream's ``length``
    means that many undelivered entries were removed, and a lag within it that none were. Otherwise
    (Redis 6.2, or an XDEL in the range) every stored event being newer than the group's position
    means events after it were removed, the newest removed possibly being the group's own last one
    (then nothing was lost in fact, but Redis does not say).

    A group at 0-0 has read nothing yet: it was created at the beginning of the topic, and what
    retention removes before its first read is history it never asked for by position (as for a
    subscription starting at EARLIEST), so no Gap."""
    if last_delivered == ZERO_ID or first_stored is None or first_stored <= last_delivered:
        return None
    if lag is not None and lag <= length:
        return None  # every entry not yet delivered to the group is still stored
    return Loss(first_stored)


__all__ = [
    "LOOK_UP",
    "LookUp",
    "Loss",
    "group_loss",
    "loss_at_cursor",
    "loss_on_open",
    "names_event",
    "overtaken",
    "trimmed_past",
]
