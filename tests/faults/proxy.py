"""A fault-injection TCP proxy for tests: it sits between Coord and one Redis node and misbehaves on demand.

    proxy = Proxy(redis_port).start()        # listens on 127.0.0.1:proxy.port, forwards to redis_port
    settings = make_settings(proxy.url)      # Coord talks to Redis through it
    proxy.latency(0.2)                       # every chunk, each direction, arrives 200 ms late
    proxy.blackhole()                        # nothing moves either way; connections stay open
    proxy.reset_all()                        # every open connection gets a TCP RST, now
    proxy.slow_reads(2000)                   # Redis -> Coord throttled to 2000 bytes/s
    proxy.refuse()                           # new connections are reset as soon as they are accepted
    proxy.heal()                             # all of the above off; held bytes flow again
    proxy.stop()

Modes change while connections are open. A chunk is held until its latency (the one in force now,
counted from when the proxy read it) has passed, so turning latency off releases what it was holding;
a chunk already being written finishes, like a packet already on the wire. ``latency`` and
``slow_reads`` combine. ``blackhole`` holds everything until ``heal``: bytes read before it and bytes
the peers send during it stay queued (in the proxy or in the kernel's socket buffers) and are delivered
in order afterwards, which is what TCP's retransmissions would do across a short partition. A
blackholed proxy still accepts connections (the kernel finishes the handshake anyway) but connects
them upstream only once healed.

The proxy runs its own asyncio loop in a daemon thread; every method may be called from any thread
and returns once the change is in effect. Counters (``stats()``, ``accepted``, ``bytes_up``,
``bytes_down``) are what tests assert on: they count, they never time.

:class:`Proxies` applies the same calls to several proxies (one per Redis Cluster node).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T")

_CHUNK = 64 * 1024
_QUEUED_CHUNKS = 64  # per direction: beyond this the proxy stops reading, so the sender feels it


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of a proxy's counters.

    ``accepted`` connections accepted since start; ``open`` those still open; ``upstream`` connections
    made to the real server; ``bytes_up`` bytes forwarded client -> server, ``bytes_down`` server ->
    client; ``resets`` connections ended with a RST by ``reset_all`` or ``refuse``; ``refused`` those
    of them reset at accept time.
    """

    accepted: int
    open: int
    upstream: int
    bytes_up: int
    bytes_down: int
    resets: int
    refused: int


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Close with a RST (SO_LINGER 0): the peer sees ECONNRESET, not an orderly end."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One proxied connection: the accepted client side and, once connected, the upstream side."""

    def __init__(self, proxy: Proxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client_reader = reader
        self.client_writer = writer
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False

    async def run(self) -> None:
        proxy = self.proxy
        try:
            await proxy._until_flowing()  # a blackholed proxy accepts but does not connect upstream
            if self.closed:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(proxy.upstream_host, proxy.upstream_port)
            except OSError:
                self.abort()  # the server is down: the client sees a reset, as it would connecting directly
                return
            if self.closed:
                _rst(up_writer)
                return
            self.upstream_writer = up_writer
            proxy._upstream += 1
            # (when read, chunk): the latency is applied when writing, so a change reaches queued chunks
            up_queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUED_CHUNKS)
            down_queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUED_CHUNKS)
            self.tasks = [
                asyncio.create_task(self._read(self.client_reader, up_queue)),
                asyncio.create_task(self._write(up_queue, up_writer, down=False)),
                asyncio.create_task(self._read(up_reader, down_queue)),
                asyncio.create_task(self._write(down_queue, self.client_writer, down=True)),
            ]
            await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.close()

    async def _read(self, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.proxy._until_flowing()
            try:
                data = await reader.read(_CHUNK)
            except OSError:
                self.abort()  # a reset from one peer becomes a reset to the other
                return
            if not data:
                await queue.put((0.0, b""))  # the end, after what is queued
                # The writer closes the link once the queue has drained; wait here so that
                # ``asyncio.wait(FIRST_COMPLETED)`` does not end the link first.
                await asyncio.Event().wait()
            await queue.put((loop.time(), data))

    async def _write(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter, *, down: bool
    ) -> None:
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        while True:
            read_at, data = await queue.get()
            if not data:
                return  # end of stream: the link closes (Redis connections never half-close)
            while data:
                # Held while blackholed or until its latency has passed; both re-read on every change.
                while proxy._blackholed or (wait := read_at + proxy._latency - loop.time()) > 0:
                    await proxy._until_changed(None if proxy._blackholed else wait)
                rate = proxy._read_rate if down else 0
                piece = data[: max(1, rate // 20)] if rate > 0 else data
                try:
                    writer.write(piece)
                    await writer.drain()
                except OSError:
                    self.abort()
                    return
                if down:
                    proxy._bytes_down += len(piece)
                else:
                    proxy._bytes_up += len(piece)
                data = data[len(piece) :]
                if rate > 0:
                    await proxy._until_changed(len(piece) / rate)

    def abort(self) -> None:
        """Reset both sides at once."""
        if self.closed:
            return
        self.closed = True
        _rst(self.client_writer)
        _rst(self.upstream_writer)
        self._cancel()

    def close(self) -> None:
        """An orderly end of both sides (after an EOF or when the proxy stops)."""
        if self.closed:
            return
        self.closed = True
        for writer in (self.client_writer, self.upstream_writer):
            if writer is not None:
                writer.close()
        self._cancel()

    def _cancel(self) -> None:
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        self.proxy._links.discard(self)


class Proxy:
    """A TCP proxy from ``127.0.0.1:<port>`` to ``upstream_host:upstream_port`` with switchable faults.

    ``port`` 0 (the default) picks a free one; :attr:`port` holds it after :meth:`start`.
    """

    def __init__(
        self, upstream_port: int, *, upstream_host: str = "127.0.0.1", port: int = 0, name: str = ""
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.name = name or f"proxy->{upstream_port}"
        self._requested_port = port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=self.name, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        # Mode, read and written only on the proxy's loop; ``_changed`` is set (and replaced) on every change.
        self._changed: asyncio.Event | None = None
        self._blackholed = False
        self._latency = 0.0
        self._read_rate = 0
        self._refusing = False
        # Counters.
        self._accepted = 0
        self._upstream = 0
        self._bytes_up = 0
        self._bytes_down = 0
        self._resets = 0
        self._refused = 0

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Proxy:
        self._thread.start()
        self._call(self._start)
        return self

    async def _start(self) -> None:
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._requested_port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close the listener and every connection (orderly), then end the thread."""
        if not self._thread.is_alive():
            return
        self._call(self._stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        pumps = [task for link in self._links for task in link.tasks]
        for link in list(self._links):
            link.close()
        self._blackholed = False  # links held by a blackhole wake up and see they are closed
        self._changed_now()
        for task in list(self._handlers):
            task.cancel()
        if waiting := [*pumps, *self._handlers]:
            await asyncio.wait(waiting, timeout=5)
        await self._server.wait_closed()

    def __enter__(self) -> Proxy:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """A redis:// URL through the proxy (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    # ------------------------------------------------------------------ faults

    def latency(self, seconds: float) -> None:
        """Delay every chunk, in each direction, by ``seconds`` (0 turns it off). Order is kept."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")

        def apply() -> None:
            self._latency = float(seconds)

        self._change(apply)

    def blackhole(self) -> None:
        """Forward nothing either way, keep every connection open, hold new ones, until :meth:`heal`."""

        def apply() -> None:
            self._blackholed = True

        self._change(apply)

    def slow_reads(self, bytes_per_sec: int) -> None:
        """Throttle server -> client bytes to ``bytes_per_sec`` (0 turns it off)."""
        if bytes_per_sec < 0:
            raise ValueError("bytes_per_sec must be >= 0")

        def apply() -> None:
            self._read_rate = int(bytes_per_sec)

        self._change(apply)

    def refuse(self) -> None:
        """Reset each new connection as soon as it is accepted, until :meth:`heal`."""

        def apply() -> None:
            self._refusing = True

        self._change(apply)

    def reset_all(self) -> int:
        """Reset (RST) every open connection, both sides, now; returns how many. Not a mode: new
        connections are proxied as before."""
        return self._call(self._reset_all)

    async def _reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.abort()
        self._resets += len(links)
        return len(links)

    def heal(self) -> None:
        """Every fault off: no latency, no throttle, no blackhole, no refusing."""

        def apply() -> None:
            self._latency = 0.0
            self._read_rate = 0
            self._refusing = False
            self._blackholed = False

        self._change(apply)

    # ------------------------------------------------------------------ counters

    def stats(self) -> ProxyStats:
        return self._call(self._stats)

    async def _stats(self) -> ProxyStats:
        return ProxyStats(
            accepted=self._accepted,
            open=len(self._links),
            upstream=self._upstream,
            bytes_up=self._bytes_up,
            bytes_down=self._bytes_down,
            resets=self._resets,
            refused=self._refused,
        )

    @property
    def accepted(self) -> int:
        return self.stats().accepted

    @property
    def open_connections(self) -> int:
        return self.stats().open

    @property
    def bytes_up(self) -> int:
        return self.stats().bytes_up

    @property
    def bytes_down(self) -> int:
        return self.stats().bytes_down

    # ------------------------------------------------------------------ internals

    async def _until_flowing(self) -> None:
        while self._blackholed:
            await self._until_changed(None)

    async def _until_changed(self, seconds: float | None) -> None:
        """Sleep ``seconds`` (None: no limit), or less if a mode changes meanwhile."""
        assert self._changed is not None, "the proxy is not started"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    def _changed_now(self) -> None:
        assert self._changed is not None, "the proxy is not started"
        self._changed.set()
        self._changed = asyncio.Event()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._accepted += 1
        if self._refusing:
            self._refused += 1
            self._resets += 1
            _rst(writer)
            return
        link = _Link(self, reader, writer)
        self._links.add(link)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await link.run()
        except asyncio.CancelledError:
            link.close()
        finally:
            self._handlers.discard(task)

    def _call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout)

    def _change(self, fn: Callable[[], None]) -> None:
        """Apply a mode change on the proxy's loop and wake whatever waits on the mode."""

        async def run() -> None:
            fn()
            self._changed_now()

        self._call(run)


class Proxies(Sequence[Proxy]):
    """Several proxies driven as one (a Redis Cluster's nodes): each call goes to every proxy."""

    def __init__(self, proxies: Iterable[Proxy]) -> None:
        self._proxies = list(proxies)

    def __getitem__(self, index: int) -> Proxy:  # type: ignore[override]
        return self._proxies[index]

    def __len__(self) -> int:
        return len(self._proxies)

    def __iter__(self) -> Iterator[Proxy]:
        return iter(self._proxies)

    def latency(self, seconds: float) -> None:
        for proxy in self._proxies:
            proxy.latency(seconds)

    def blackhole(self) -> None:
        for proxy in self._proxies:
            proxy.blackhole()

    def slow_reads(self, bytes_per_sec: int) -> None:
        for proxy in self._proxies:
            proxy.slow_reads(bytes_per_sec)

    def refuse(self) -> None:
        for proxy in self._proxies:
            proxy.refuse()

    def reset_all(self) -> int:
        return sum(proxy.reset_all() for proxy in self._proxies)

    def heal(self) -> None:
        for proxy in self._proxies:
            proxy.heal()

    def stats(self) -> ProxyStats:
        """The counters of all the proxies added up."""
        each = [proxy.stats() for proxy in self._proxies]
        return ProxyStats(*(sum(getattr(s, f.name) for s in each) for f in fields(ProxyStats)))

    def stop(self) -> None:
        for proxy in self._proxies:
            proxy.stop()
