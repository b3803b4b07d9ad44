"""A Pub/Sub subscription on a connection of its own, with typed messages and bounded calls."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .executor import text

T = TypeVar("T")


@dataclass(frozen=True)
class Message:
    """One Pub/Sub message: ``kind`` is ``message`` for a published one, ``subscribe`` or
    ``unsubscribe`` for a confirmation (then ``data`` is empty)."""

    kind: str
    channel: str
    data: bytes


class Bounded(Protocol):
    """Whatever bounds a Redis call in time and maps its failures (the backend)."""

    async def bounded(
        self, awaitable: Awaitable[T], limit: float | None = None, *, waiting: float = 0.0
    ) -> T: ...


class PubSub:
    """One Pub/Sub connection (redis-py's; on a cluster, on the node of the first channel's slot).

    Every call is bounded like any Redis call (a failure is BackendUnavailable or DeadlineExceeded).
    Only one task may read messages at a time.
    """

    def __init__(self, pubsub: Any, backend: Bounded) -> None:
        self._pubsub = pubsub
        self._backend = backend

    async def subscribe(self, *channels: str) -> None:
        """Send SUBSCRIBE; Redis confirms each channel with a ``subscribe`` message (see
        :meth:`get_message`), and only from then on is no message published there missed."""
        await self._backend.bounded(self._pubsub.subscribe(*channels))

    async def unsubscribe(self, *channels: str) -> None:
        await self._backend.bounded(self._pubsub.unsubscribe(*channels))

    async def get_message(self, wait: float, *, confirmations: bool = False) -> Message | None:
        """The next message, waiting up to ``wait`` seconds for one; None if none came.

        Subscription confirmations are messages only with ``confirmations=True``.
        """
        raw = await self._backend.bounded(
            self._pubsub.get_message(ignore_subscribe_messages=not confirmations, timeout=wait),
            waiting=wait,
        )
        if not raw:
            return None
        kind = raw["type"]
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "message":
            return Message(kind, text(raw["channel"]), bytes(raw["data"]))
        if confirmations and kind in ("subscribe", "unsubscribe"):
            return Message(kind, text(raw["channel"]), b"")
        return None

    async def aclose(self) -> None:
        """Close the connection; never raises (it may be gone already)."""
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
