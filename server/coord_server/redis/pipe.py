"""One multiplexed, self-pipelining connection to a single Redis node, for the script calls on the hot path.

Why not redis-py here: every call through redis-py takes a connection from the pool, writes, waits
for its reply and gives the connection back, and that bookkeeping (plus one ``write`` syscall per
command) was the largest single cost of a cache Get inside the server — larger than Coord's own code.
Redis answers a connection's commands in order, so many callers can share one connection: each call
appends its encoded command to a write buffer and a future to a FIFO; the buffer goes out once per
event-loop iteration (so concurrent requests become one pipeline in one syscall, with no waiting for
a call in flight as the :class:`~.coalesce.Coalescer` has to); replies are parsed by hiredis in C and
resolve the futures in order. This is the :class:`~.executor.Executor` of a single node.

What each caller still gets on its own: its own reply or error (a script error fails only its call;
a lost connection fails every call in flight on it); its own deadline (the caller stops waiting, its
reply is read and dropped when it comes, so the order stays right). A connection whose oldest call
has waited longer than the Redis timeout is presumed dead (a peer gone without a reset) and dropped,
so one silent connection cannot stall every later call; the next call opens a new one.

Used for plain TCP and unix-socket Redis when hiredis is installed (it parses the replies). TLS,
Sentinel and Cluster keep redis-py (and its routing), through the coalescer.
Pub/Sub and blocking reads never come here: they hold their connection, which this one cannot.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.exceptions as rex

from . import deadline
from .executor import Arg, Command

try:
    import hiredis
except ImportError:  # pinned in requirements.txt; without it, the backend uses the coalescer
    AVAILABLE = False
else:
    AVAILABLE = True

log = logging.getLogger(__name__)


# Error replies whose first word redis-py maps to a class of its own; the rest are ResponseError
# (BUSY among them: redis-py has no class for it; states.py knows it by its first word).
_ERRORS: dict[str, type[rex.RedisError]] = {
    "NOSCRIPT": rex.NoScriptError,
    "LOADING": rex.BusyLoadingError,
    "READONLY": rex.ReadOnlyError,
    "MASTERDOWN": rex.MasterDownError,
    "OOM": rex.OutOfMemoryError,
    "TRYAGAIN": rex.TryAgainError,
    "CLUSTERDOWN": rex.ClusterDownError,
    "NOAUTH": rex.AuthenticationError,
    "WRONGPASS": rex.AuthenticationError,
}


def _pack(args: Command) -> bytes:
    """One command in RESP, encoded by hiredis in C (its stub types only one-element tuples)."""
    packed: bytes = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]
    return packed


def _error(reply: hiredis.ReplyError) -> Exception:
    message = str(reply)
    cls = _ERRORS.get(message.split(" ", 1)[0], rex.ResponseError)
    return cls(message)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _Many:
    """The replies of commands sent together, gathered into one future (not one future each)."""

    __slots__ = ("expected", "future", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], expected: int) -> None:
        self.future = future
        self.replies: list[Any] = []
        self.expected = expected

    def add(self, reply: Any) -> None:
        if self.future.done():  # the caller gave up or the batch failed: nothing to collect
            return
        self.replies.append(reply)
        if len(self.replies) == self.expected:
            self.future.set_result(self.replies)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a finished connect's failure as seen: its callers may all have given up already."""
    if not task.cancelled():
        task.exception()


class _Protocol(asyncio.Protocol):
    """The connection's reading half: parses replies and resolves the waiting futures in order."""

    def __init__(self, pipe: RespPipe) -> None:
        self._pipe = pipe
        self._reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self is not self._pipe._owner:  # an older connection, already dropped
            return
        reader = self._reader
        reader.feed(data)
        waiting = self._pipe._waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:  # garbage on the wire: this connection is done
                self._pipe._drop(self, rex.ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step, do not guess
                self._pipe._drop(self, rex.ConnectionError("Redis sent a reply nobody was waiting for"))
                return
            many, _ = waiting.popleft()
            # An error reply stays in its place among the others; once the caller gave up (deadline,
            # cancellation) its replies are read and dropped.
            many.add(_error(reply) if isinstance(reply, hiredis.ReplyError) else reply)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._pipe._drop(self, rex.ConnectionError(f"connection to Redis lost{reason}"))


class RespPipe:
    """Script calls (and any other short command) over one shared, pipelined Redis connection.

    Implements :class:`~.executor.Executor`.
    """

    def __init__(
        self,
        *,
        host: str = "",
        port: int = 6379,
        path: str = "",
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        connect_timeout: float,
        stale_after: float,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._username, self._password, self._db = username, password, db
        self._connect_timeout = connect_timeout
        self._stale_after = stale_after
        self._protocol: _Protocol | None = None  # ready for calls
        self._owner: _Protocol | None = None  # the connection _waiting and _buffer belong to
        self._connecting: asyncio.Task[None] | None = None
        # (future, time sent) per command written and not yet answered, in the order sent.
        self._waiting: collections.deque[tuple[_Many, float]] = collections.deque()
        self._buffer: list[bytes] = []
        self._flush_scheduled = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop  # the loop of the connection: set when it is opened

    @classmethod
    def for_client_kwargs(
        cls, kwargs: dict[str, Any], *, connect_timeout: float, stale_after: float
    ) -> RespPipe:
        """A pipe to the node a redis-py connection pool with these ``connection_kwargs`` reaches."""
        return cls(
            host=str(kwargs.get("host", "")),
            port=int(kwargs.get("port", 6379)),
            path=str(kwargs.get("path", "")),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            db=int(kwargs.get("db", 0) or 0),
            connect_timeout=connect_timeout,
            stale_after=stale_after,
        )

    # -- calls -------------------------------------------------------------------------------------

    async def execute(self, commands: Sequence[Command], budget: float) -> list[Any]:
        """Send commands back to back; their replies in order, an error reply's exception in its place.

        One future for them all (a batch costs one wake-up, not one per command), and one timer on
        it: past ``budget`` seconds the caller gets TimeoutError and the replies, when they come, are
        read and dropped. Losing the connection raises its ConnectionError.
        """
        if not commands:
            return []
        if self._protocol is None or self._is_stale():
            await self._connect(budget)
            if self._protocol is None:
                # Lost again before this call resumed: queued now, its reply slot would have no
                # command, and the next connection's replies would go to the wrong callers.
                raise rex.ConnectionError("connection to Redis lost")
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        self._send(_Many(future, len(commands)), [_pack(c) for c in commands])
        timer = self._loop.call_later(budget, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _send(self, many: _Many, encoded: list[bytes]) -> None:
        now = time.monotonic()
        self._waiting.extend((many, now) for _ in encoded)
        self._buffer.extend(encoded)
        if not self._flush_scheduled:
            # Everything asked for during this loop iteration leaves in one write.
            self._flush_scheduled = True
            # self._loop, not asyncio.get_running_loop(): on Python 3.11 that makes a getpid()
            # syscall, and syscalls are dear here (one per call is whole percents of a server's CPU).
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write the buffer to the connection the waiting calls belong to (it is cleared with it)."""
        self._flush_scheduled = False
        data, self._buffer = self._buffer, []
        owner = self._owner
        if data and owner is not None and owner.transport is not None:
            owner.transport.write(b"".join(data))

    def _is_stale(self) -> bool:
        """The oldest unanswered call has waited past the Redis timeout: presume the peer gone."""
        if not self._waiting:
            return False
        if time.monotonic() - self._waiting[0][1] <= self._stale_after:
            return False
        if self._owner is not None:
            log.warning("Redis has not answered for %.1fs; opening a new connection", self._stale_after)
            self._drop(self._owner, rex.TimeoutError("Redis stopped answering on this connection"))
        return True

    # -- connection --------------------------------------------------------------------------------

    async def _connect(self, budget: float) -> None:
        """Open the connection, once for all callers waiting on it (no one caller's cancel stops it)."""
        if self._closed:
            raise rex.ConnectionError("the Redis connection is closed")
        self._loop = asyncio.get_running_loop()
        if self._connecting is None or self._connecting.done():
            task = self._loop.create_task(self._open_bounded(), context=deadline.detached_context())
            task.add_done_callback(_retrieve)
            self._connecting = task
        async with asyncio.timeout(budget):
            await asyncio.shield(self._connecting)

    async def _open_bounded(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._open()
        except BaseException as exc:
            if self._owner is not None and self._owner is not self._protocol:  # setup cut short
                self._drop(self._owner, rex.ConnectionError("connection setup did not finish"))
            if isinstance(exc, TimeoutError):
                raise rex.TimeoutError(f"no connection to Redis within {self._connect_timeout:g}s") from None
            if isinstance(exc, OSError):
                raise rex.ConnectionError(f"cannot connect to Redis: {exc}") from exc
            raise

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._path:
            _, protocol = await loop.create_unix_connection(lambda: _Protocol(self), self._path)
        else:
            _, protocol = await loop.create_connection(lambda: _Protocol(self), self._host, self._port)
        if protocol.transport is None:  # reset before this ran: calls queued on it would wait in vain
            raise rex.ConnectionError("connection to Redis lost as it opened")
        self._owner = protocol  # nothing else is waiting: callers queue behind self._connecting
        setup: list[tuple[Arg, ...]] = []
        if self._password is not None:
            setup.append(
                ("AUTH", self._username, self._password) if self._username else ("AUTH", self._password)
            )
        if self._db:
            setup.append(("SELECT", self._db))
        if setup:
            future: asyncio.Future[list[Any]] = loop.create_future()
            self._send(_Many(future, len(setup)), [_pack(c) for c in setup])
            try:
                for reply in await future:
                    if isinstance(reply, Exception):
                        raise reply  # a wrong password (AuthenticationError) or database
            except BaseException:
                self._drop(protocol, rex.ConnectionError("Redis refused the connection setup"))
                raise
        self._protocol = protocol
        return protocol

    def _drop(self, protocol: _Protocol, error: Exception) -> None:
        """``protocol``'s connection is finished: fail every call waiting on it."""
        if protocol.transport is not None:
            protocol.transport.abort()
            protocol.transport = None
        if protocol is not self._owner:  # an older connection, already dropped
            return
        self._owner = self._protocol = None
        waiting, self._waiting = self._waiting, collections.deque()
        self._buffer = []
        for many, _ in waiting:
            if not many.future.done():
                many.future.set_exception(error)

    async def aclose(self, drain_timeout: float = 0.0) -> None:
        """Close the connection now: a call still waiting fails (its caller's budget was its own)."""
        self._closed = True
        if self._owner is not None:
            self._drop(self._owner, rex.ConnectionError("the Redis connection is closing"))
