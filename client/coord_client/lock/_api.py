"""The part of :class:`LockAPI` and :class:`AsyncLockAPI` that sends nothing itself: the methods that
make a Hold or an Acquired context manager, and what those context managers share.

Each API makes its own kind (threads or tasks; ``with`` or ``async with``) through ``_new_hold`` and
``_new_acquired``; the arguments, their checks and their defaults are written once, here.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from .._convert import Seconds, seconds
from . import _codec
from ._lease import HoldSpec
from .models import AcquireResult, Grant, LockNotAcquired, LostCallback, Mode, ReleaseResult

HoldT = TypeVar("HoldT")
AcquiredT = TypeVar("AcquiredT")


class LockAPIBase(Generic[HoldT, AcquiredT]):
    """``hold`` (also ``api(name, ...)``), ``semaphore``, ``read_lock``, ``write_lock``, ``acquired``."""

    def hold(
        self,
        name: str,
        ttl: Seconds | None = None,
        *,
        wait: Seconds | None = None,
        mode: Mode | str | None = None,
        limit: int | None = None,
        owner: str = "",
        heartbeat: Seconds | None = None,
        raise_on_lost: bool = True,
        on_lost: LostCallback | None = None,
        timeout: float | None = None,
    ) -> HoldT:
        """Hold the lock through a Hold stream for the length of a ``with`` block (``async with`` on
        :class:`AsyncLockAPI`; see :class:`Hold`).

        ``heartbeat`` is the renewal interval (default: a third of the lease); ``on_lost`` is called
        with the :class:`LockLost` error when the grant is lost: from a background thread (sync), in
        the event loop (asyncio).
        """
        request = _codec.acquire_request(name, ttl=ttl, wait=wait, mode=mode, limit=limit, owner=owner)
        spec = HoldSpec(
            request=request,
            wait=_codec.wait_seconds(request),
            heartbeat=seconds(heartbeat, "heartbeat"),
            raise_on_lost=raise_on_lost,
            on_lost=on_lost,
            timeout=timeout,
        )
        return self._new_hold(spec)

    __call__ = hold

    def semaphore(self, name: str, limit: int, ttl: Seconds | None = None, **options: Any) -> HoldT:
        """Hold one of ``limit`` permits (every caller of ``name`` should use the same limit)."""
        return self.hold(name, ttl, mode=Mode.SHARED, limit=limit, **options)

    def read_lock(self, name: str, ttl: Seconds | None = None, **options: Any) -> HoldT:
        """Hold the read side of a read/write lock: shared with other readers, not with a writer."""
        return self.hold(name, ttl, mode=Mode.SHARED, **options)

    def write_lock(self, name: str, ttl: Seconds | None = None, **options: Any) -> HoldT:
        """Hold the write side of a read/write lock: alone. Waiting writers hold back later readers."""
        return self.hold(name, ttl, mode=Mode.EXCLUSIVE, **options)

    def acquired(
        self,
        name: str,
        ttl: Seconds | None = None,
        *,
        wait: Seconds | None = None,
        mode: Mode | str | None = None,
        limit: int | None = None,
        owner: str = "",
        timeout: float | None = None,
    ) -> AcquiredT:
        """Acquire for a ``with`` (or ``async with``) block and Release after it, without a stream
        (see :class:`Acquired`)."""
        kwargs = dict(name=name, ttl=ttl, wait=wait, mode=mode, limit=limit, owner=owner, timeout=timeout)
        return self._new_acquired(kwargs)

    def _new_hold(self, spec: HoldSpec) -> HoldT:
        raise NotImplementedError

    def _new_acquired(self, kwargs: dict[str, Any]) -> AcquiredT:
        raise NotImplementedError


class AcquiredBase:
    """What :class:`Acquired` and :class:`AsyncAcquired` share: the grant taken on entering and the
    result of the release on leaving. Nothing renews the lease: the block must end within the TTL."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self._kwargs = kwargs
        self.grant: Grant | None = None
        self.release_result: ReleaseResult | None = None

    def _take(self, result: AcquireResult) -> Grant:
        if result.grant is None:
            raise LockNotAcquired(self._kwargs["name"], result.holders, result.queue_position)
        self.grant = result.grant
        return result.grant

    def _taken(self) -> Grant:
        assert self.grant is not None, "the block was not entered"
        return self.grant
