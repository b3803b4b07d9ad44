# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""One unary call as data, and the two ways of sending it: what lets a service's sync and async APIs
share everything but the awaiting (as httpx's ``BaseClient`` does).

A service's request module turns a method's arguments into a :class:`Call`: the RPC's name, the
checked request, and the function that turns the response into the caller's result. The sync and
async APIs only send it, through :class:`SyncService` and :class:`AsyncService`::

    def get(self, key: str, *, timeout: float | None = None) -> Entry:
        return self._send(_codec.get(key), timeout)

Such a method is written once, in the sync API: on an :class:`AsyncService` the same body returns
the coroutine of ``AsyncService._send``, so the asyncio API takes it over with :func:`awaiting`
(``get = awaiting(CacheAPI.get)``), and type checkers see ``await api.get(key)`` return an Entry.
One consequence: the arguments are checked (TypeError, ValueError) when the method is called, before
the coroutine exists, not when it is awaited; for ``await api.get(key)`` that is the same place. Only
methods that do more than build one Call and send it (streams, Hold, subscribe, consume, get_or_set,
the batched rate-limit checks) are written again, as ``async def``.

The transport picks the retry policy from the full method name, so a Call needs no flag for it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from ._base import AsyncTransport, Transport

T = TypeVar("T")
P = ParamSpec("P")
TransportT = TypeVar("TransportT", Transport, AsyncTransport)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One unary RPC of a service: ``method`` (``"Get"``) with ``request``, read by ``parse``.

    ``request`` None means there is nothing to send (an empty batch): ``parse(None)`` is the result.
    """

    method: str
    request: Any
    parse: Callable[[Any], T]

    @classmethod
    def answered(cls, result: T) -> Call[T]:
        """A call that sends nothing and returns ``result``."""
        return cls("", None, lambda _: result)


class _Service(Generic[TransportT]):
    """What both halves hold: the transport (deadline, retries, metadata) and one stub."""

    def __init__(self, transport: TransportT, stub: Any, service: str) -> None:
        self._t: TransportT = transport
        self._stub = stub
        self._prefix = f"/{service}/"


class SyncService(_Service[Transport]):
    """The sync half of a service API."""

    def _send(self, call: Call[T], timeout: float | None) -> T:
        if call.request is None:
            return call.parse(None)
        method = getattr(self._stub, call.method)
        return call.parse(self._t.call(method, self._prefix + call.method, call.request, timeout))


class AsyncService(_Service[AsyncTransport]):
    """The asyncio half of a service API: :class:`SyncService` but for the ``await``."""

    async def _send(self, call: Call[T], timeout: float | None) -> T:
        if call.request is None:
            return call.parse(None)
        method = getattr(self._stub, call.method)
        return call.parse(await self._t.call(method, self._prefix + call.method, call.request, timeout))


def awaiting(
    method: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The sync API's ``method``, as the asyncio API's: its body only builds a Call and returns
    ``self._send(call, timeout)``, which on an AsyncService is a coroutine. One definition, two APIs.

    The function itself is returned (its signature and docstring included); only its type changes.
    """
    return method  # type: ignore[return-value]


__all__ = ["AsyncService", "Call", "SyncService", "awaiting"]
