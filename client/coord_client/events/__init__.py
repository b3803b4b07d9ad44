"""The Events service: :class:`EventsAPI` (sync) and :class:`AsyncEventsAPI` (asyncio).

A subscription reconnects by itself when the stream breaks and resumes right after the last event it
handed out for each topic: no gap, no duplicate; history that retention removed before it could be
read is reported to ``on_gap``. One module per concern, the twins sharing everything but the
waiting: :mod:`.models`, :mod:`._codec` (requests and parsing), :mod:`._stream` (cursors, resumption,
backoff, settling), :mod:`._api` (``subscribe``), :mod:`.sync` and :mod:`.aio` (examples there).
"""

from ._codec import SERVICE
from .aio import AsyncEventsAPI, AsyncSubscription
from .models import Data, Event, Gap, GroupInfo, PublishItem, PublishResult, Start, TopicInfo
from .sync import EventsAPI, Subscription

__all__ = [
    "SERVICE",
    "AsyncEventsAPI",
    "AsyncSubscription",
    "Data",
    "Event",
    "EventsAPI",
    "Gap",
    "GroupInfo",
    "PublishItem",
    "PublishResult",
    "Start",
    "Subscription",
    "TopicInfo",
]
