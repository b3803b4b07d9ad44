"""The part of :class:`EventsAPI` and :class:`AsyncEventsAPI` that sends nothing itself: ``subscribe``,
whose arguments, checks and defaults are written once here; each API makes its own kind of
subscription (iterated with ``for`` or ``async for``) through ``_new_subscription``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from .._convert import Seconds
from ._stream import Cursors
from .models import Gap, Start

SubscriptionT = TypeVar("SubscriptionT")


class EventsAPIBase(Generic[SubscriptionT]):
    def subscribe(
        self,
        *topics: str,
        after: Mapping[str, str] | str | None = None,
        start: Start = "latest",
        heartbeat: Seconds | None = None,
        on_gap: Callable[[Gap], Any] | None = None,
        volatile: bool = False,
    ) -> SubscriptionT:
        """Events of ``topics`` (names or patterns such as ``orders.*``), reconnecting by itself.

        ``after`` resumes: a ``{topic: id}`` mapping (``Subscription.cursors`` of an earlier run) or,
        for one topic, an id. Topics without a cursor start at ``start``. ``heartbeat`` asks the
        server for a Progress frame after that much silence (default: the server's). ``volatile=True``
        reads the topics' volatile (Pub/Sub) events instead: live only, numbered, losses reported to
        ``on_gap``. Iterate the result with ``for`` (:class:`EventsAPI`) or ``async for``
        (:class:`AsyncEventsAPI`).
        """
        return self._new_subscription(Cursors(topics, start, after, heartbeat, volatile), on_gap)

    def _new_subscription(self, cursors: Cursors, on_gap: Callable[[Gap], Any] | None) -> SubscriptionT:
        raise NotImplementedError
