"""What the Events service's calls take and return: the same for :class:`EventsAPI` and
:class:`AsyncEventsAPI`. Times are timezone-aware ``datetime`` values in UTC; an absent time is None."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

Start = str | datetime  # "latest", "earliest", or a moment
Data = bytes | str


@dataclass(frozen=True)
class Event:
    """One event. ``id`` is its resume cursor within ``topic``; ``delivery_count`` is set by consume."""

    topic: str
    id: str
    data: bytes
    content_type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    publish_time: datetime | None = None
    delivery_count: int = 0
    sequence: int = 0  # volatile events: the topic's sequence number (their ``id`` is empty)


@dataclass(frozen=True)
class PublishResult:
    """``id`` of the stored event; ``duplicate`` when a dedup id matched an earlier publish."""

    topic: str
    id: str
    duplicate: bool
    publish_time: datetime | None
    sequence: int = 0  # volatile events only


@dataclass(frozen=True)
class PublishItem:
    """One event for :meth:`EventsAPI.publish_many`."""

    topic: str
    data: Data
    content_type: str = ""
    headers: Mapping[str, str] | None = None
    dedup_id: str | None = None
    volatile: bool = False


@dataclass(frozen=True)
class Gap:
    """History of ``topic`` after ``after_id`` was removed by retention before it could be read."""

    topic: str
    after_id: str
    first_available_id: str
    after_sequence: int = 0  # volatile subscriptions: events after_sequence+1 .. next_sequence-1 were lost
    next_sequence: int = 0


@dataclass(frozen=True)
class GroupInfo:
    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    lag: int | None


@dataclass(frozen=True)
class TopicInfo:
    name: str
    exists: bool
    length: int
    first_id: str
    last_id: str
    max_length: int
    max_age: timedelta
    groups: list[GroupInfo]
    local_subscribers: int


__all__ = ["Data", "Event", "Gap", "GroupInfo", "PublishItem", "PublishResult", "Start", "TopicInfo"]
