"""Consumer-group backlog: coord_events_group_pending and coord_events_group_lag, read from XINFO
GROUPS by a background task every ``GROUPS_INTERVAL`` seconds, never per scrape or per RPC.

Only the groups that a Consume stream of this process reads are sampled, so the label values are
bounded by what this process serves (not by every group in Redis), and one XINFO GROUPS per topic
covers all of them. A group's series go as soon as its last stream here ends; the task ends with
the last one and starts again with the next stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from ..redis import RedisBackend, deadline
from .families import Metrics

log = logging.getLogger(__name__)

# A backlog moves with the consumers' pace; one XINFO GROUPS per consumed topic every 15 s costs
# Redis nothing, however often Prometheus scrapes.
GROUPS_INTERVAL = 15.0


class GroupFigures(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def pending(self) -> int: ...
    @property
    def lag(self) -> int | None: ...


class GroupsReader(Protocol):
    """A tenant's events store: XINFO GROUPS of one topic."""

    async def groups(self, topic: str) -> Sequence[GroupFigures]: ...


class _Topic:
    __slots__ = ("groups", "reader")

    def __init__(self, reader: GroupsReader) -> None:
        self.reader = reader
        self.groups: dict[str, int] = {}  # group -> Consume streams of this process reading it


class GroupSampler:
    """The consumed groups of this process (every tenant's) and the task sampling them."""

    def __init__(self, metrics: Metrics, redis: RedisBackend, interval: float | None = None) -> None:
        self._pending = metrics.events_group_pending
        self._lag = metrics.events_group_lag
        self._interval = GROUPS_INTERVAL if interval is None else interval
        self._topics: dict[tuple[str, str], _Topic] = {}  # (tenant, topic) -> its consumed groups
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        redis.on_close(self.close)

    def joined(self, tenant: str, topic: str, group: str, reader: GroupsReader) -> None:
        """A Consume stream of ``tenant`` started reading ``group`` of ``topic`` (through ``reader``)."""
        consumed = self._topics.get((tenant, topic))
        if consumed is None:
            consumed = self._topics[(tenant, topic)] = _Topic(reader)
        consumed.groups[group] = consumed.groups.get(group, 0) + 1
        if self._task is None and not self._closed:
            # Not the RPC's deadline: the task outlives the stream that started it.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="coord-metrics-event-groups", context=deadline.detached_context()
            )

    def left(self, tenant: str, topic: str, group: str) -> None:
        """One of those streams ended; the group's series go with the last one."""
        consumed = self._topics.get((tenant, topic))
        if consumed is None or group not in consumed.groups:
            return
        streams = consumed.groups[group] - 1
        if streams > 0:
            consumed.groups[group] = streams
            return
        del consumed.groups[group]
        if not consumed.groups:
            del self._topics[(tenant, topic)]
        self._pending.forget(tenant, topic, group)
        self._lag.forget(tenant, topic, group)

    async def sample(self) -> None:
        """Read XINFO GROUPS once for every consumed topic into the gauges."""
        for (tenant, topic), consumed in list(self._topics.items()):
            try:
                figures = await consumed.reader.groups(topic)
            except Exception as exc:  # Redis unreachable: keep the last figures, try next time
                log.debug("XINFO GROUPS of topic %r for the metrics failed: %r", topic, exc)
                continue
            if self._topics.get((tenant, topic)) is not consumed:
                continue  # its last stream ended meanwhile: its series are gone already
            by_name = {g.name: g for g in figures}
            for group in consumed.groups:
                labels = (tenant, topic, group)
                found = by_name.get(group)
                if found is None:  # the topic (and its groups) was deleted
                    self._pending.forget(*labels)
                    self._lag.forget(*labels)
                    continue
                self._pending.value(*labels).value = found.pending
                if found.lag is None:  # Redis 6.2, or a lag Redis cannot tell after a deletion
                    self._lag.forget(*labels)
                else:
                    self._lag.value(*labels).value = found.lag

    async def _run(self) -> None:
        try:
            while self._topics:
                await self.sample()
                await asyncio.sleep(self._interval)
        finally:
            self._task = None

    async def close(self) -> None:
        """Stop sampling (server shutdown)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
