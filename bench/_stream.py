"""Many concurrent callers over one bidirectional stream, matched by request id.

Coord's streaming forms (``CacheService.GetStream`` and ``SetStream``, ``RateLimitService.CheckStream``)
answer each message with the same ``request_id``, in completion order. :class:`Multiplexed` turns such
a stream into an awaitable call, so the harness can drive it with K concurrent workers exactly like a unary
call: each worker sends a message and waits for the answer that carries its id.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc


class Multiplexed:
    """One open stream; ``await call(payload_kwargs)`` sends one message and returns its answer."""

    def __init__(self, open_stream: Callable[[AsyncIterator[Any]], Any], message: Callable[..., Any]) -> None:
        self._open = open_stream
        self._message = message
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._call: Any = None

    async def _requests(self) -> AsyncIterator[Any]:
        while (item := await self._outbox.get()) is not None:
            yield item

    async def _read(self) -> None:
        try:
            async for answer in self._call:
                future = self._waiting.pop(answer.request_id, None)
                if future is not None and not future.done():
                    future.set_result(answer)
        except grpc.aio.AioRpcError as exc:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(exc)

    async def __aenter__(self) -> Multiplexed:
        self._call = self._open(self._requests())
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._outbox.put_nowait(None)
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)
            self._reader.cancel()

    async def call(self, **fields: Any) -> Any:
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self._outbox.put_nowait(self._message(request_id=request_id, **fields))
        answer = await future
        if answer.HasField("error"):
            raise RuntimeError(f"stream answer {request_id} failed: {answer.error.message}")
        return answer
