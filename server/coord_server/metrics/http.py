"""The /metrics endpoint: a minimal HTTP/1.1 server on the event loop (TCP, or a unix socket for a
worker whose supervisor merges the workers' figures, merge.py).

On the loop, not in a thread: the numbers it reads are only ever written on the loop, so a scrape
sees them consistent (a histogram's count matches its buckets). Every answer closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..config import ConfigError
from ..errors import StartupError

log = logging.getLogger(__name__)

Render = Callable[[], Awaitable[bytes]]

_MAX_REQUEST = 16 * 1024  # a scrape's request line and headers fit in far less
_READ_TIMEOUT = 10.0  # a client that connects and says nothing is let go


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) of COORD_METRICS_LISTEN; ConfigError when it is not one."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"COORD_METRICS_LISTEN: {listen!r} is not host:port (for example 127.0.0.1:9464)")
    return host, int(port)


class Endpoint:
    """Serves ``render()`` at GET /metrics until :meth:`close`."""

    def __init__(self, render: Render) -> None:
        self._render = render
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def listen_tcp(self, listen: str) -> int:
        """Bind ``listen`` (host:port); returns the port (port 0 picks one)."""
        host, port = parse_listen(listen)
        try:
            self._server = await asyncio.start_server(self._serve, host, port)
        except OSError as exc:
            raise StartupError(f"cannot serve metrics on {listen}: {exc.strerror or exc}") from exc
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def listen_unix(self, path: str) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_REQUEST:
                await _answer(writer, 431, b"request header too large\n")
                return
            method, _, rest = head.split(b"\r\n", 1)[0].partition(b" ")
            target = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                await _answer(writer, 405, b"only GET\n")
            elif target != b"/metrics":
                await _answer(writer, 404, b"metrics are at /metrics\n")
            else:
                body = await self._render()
                await _answer(writer, 200, b"" if method == b"HEAD" else body, CONTENT_TYPE_LATEST)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except Exception:
            log.exception("serving /metrics failed")
            with contextlib.suppress(Exception):
                await _answer(writer, 500, b"internal error\n")
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


async def _answer(
    writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
) -> None:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("ascii") + body)
    await writer.drain()
