"""The coalescer: redis-py with the command batches of concurrent callers sent together.

Used where the shared pipe (``pipe.py``) cannot be: Redis Cluster (redis-py routes each command to its
node), TLS, and a single node without hiredis.

On a Cluster, batches are coalesced per node (a lane per master, found from the first command's key
and redis-py's slot map): a master that stops answering holds up only the calls queued for it, while
the calls for the other masters go on. The lane is only a grouping; redis-py still routes every
command (and follows MOVED) itself, so a stale slot map costs nothing but a shared lane.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from . import deadline
from .executor import Client, Command, send

# Commands whose key is the third word (a subcommand comes first); every other keyed command Coord
# sends has its key second. EVAL/EVALSHA are read apart (the key follows the key count).
_SUBCOMMAND_FIRST = frozenset({b"XINFO", b"XGROUP", b"OBJECT", b"MEMORY"})
_ANY_NODE = ""  # the lane of commands with no key (TIME, PUBLISH...): any node answers them


class Coalescer:
    """Sends the commands of concurrent callers to Redis together: see :class:`_Lane`.

    A single node (TLS, no hiredis) has one lane; a Cluster one per master, so that one master that
    hangs cannot fail the calls of the others queued behind its pipeline.
    """

    def __init__(self, client: Client, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self._cluster = client if isinstance(client, RedisCluster) else None
        self._lanes: dict[str, _Lane] = {}

    async def execute(self, commands: Sequence[Command], budget: float) -> list[Any]:
        name = self._lane_of(commands[0]) if self._cluster is not None and commands else _ANY_NODE
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane(self._client, self._timeout)
        return await lane.execute(commands, budget)

    def _lane_of(self, command: Command) -> str:
        """The name of the master that serves ``command``'s key, as far as the slot map knows."""
        assert self._cluster is not None
        word = _word(command[0])
        if word in (b"EVALSHA", b"EVAL"):
            key = command[3] if len(command) > 3 and _word(command[2]) != b"0" else None
        elif word in _SUBCOMMAND_FIRST:
            key = command[2] if len(command) > 2 else None
        else:
            key = command[1] if len(command) > 1 else None
        if key is None:
            return _ANY_NODE
        nodes = self._cluster.nodes_manager.slots_cache.get(key_slot(_bytes(key)))
        return str(nodes[0].name) if nodes else _ANY_NODE

    async def aclose(self, drain_timeout: float) -> None:
        """Wait (at most ``drain_timeout`` seconds) for the pipelines in flight, on shutdown."""
        flushers = {lane.flusher for lane in self._lanes.values() if lane.flusher is not None}
        pending = {task for task in flushers if not task.done()}
        if pending:
            await asyncio.wait(pending, timeout=drain_timeout)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _word(value: Any) -> bytes:
    return _bytes(value).upper()


class _Lane:
    """Sends the commands of concurrent callers to Redis together, one pipeline at a time.

    A batch that finds nothing in flight is sent at once on its own, so a lone caller pays nothing.
    Batches that arrive while Redis is busy with earlier ones wait in a queue; when the round trip in
    flight returns, the whole queue goes out as the next pipeline (one write, one connection, one read
    of all replies) and so on until the queue is empty. Under load this replaces N concurrent round
    trips, each on its own connection, by a few pipelines: less work per call for redis-py, for the
    event loop and for Redis.

    What stays as it was per caller: each command is still atomic on its own (a pipeline is not a
    transaction); each caller gets its own replies, error replies in their places (a script error
    fails only its command; a lost connection fails the batches of that pipeline); and each caller's
    budget still applies (a caller that gives up leaves its commands in the pipeline, as a cancelled
    single call may already have reached Redis too). On Redis Cluster, redis-py's cluster pipeline
    splits each pipeline per node and sends to the nodes concurrently.
    """

    def __init__(self, client: Client, timeout: float) -> None:
        self._client = client
        # The flusher serves no single caller, so no caller's budget cancels its round trip: it is
        # bounded here instead, or one dead connection (no RST) would stall every later call.
        self._timeout = timeout
        self._queue: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]] = []
        self._busy = False
        self.flusher: asyncio.Task[None] | None = None

    async def execute(self, commands: Sequence[Command], budget: float) -> list[Any]:
        # asyncio.timeout, not wait_for: no extra Task per call.
        async with asyncio.timeout(budget):
            if self._busy:
                future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
                self._queue.append((commands, future))
                return await future
            self._busy = True
            try:
                return await send(self._client, commands)
            finally:
                self._hand_over()

    def _hand_over(self) -> None:
        """The round trip in flight has returned: send what queued meanwhile, or become idle."""
        if not self._queue:
            self._busy = False
            return
        # The flusher serves many callers, so no one caller's deadline is its own.
        self.flusher = asyncio.get_running_loop().create_task(
            self._flush(), context=deadline.detached_context()
        )

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                live = [(c, f) for c, f in batch if not f.done()]  # callers that gave up are skipped
                if live:
                    await self._send(live)
        finally:
            self._busy = False
            if self._queue:  # only if _send was cancelled (shutdown): fail the rest, do not hang them
                for _, future in self._queue:
                    if not future.done():
                        future.set_exception(rex.ConnectionError("the Redis connection is closing"))
                self._queue = []

    async def _send(self, batch: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]]) -> None:
        commands = [command for commands, _ in batch for command in commands]
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    replies = await send(self._client, commands)
            except TimeoutError:
                raise rex.TimeoutError(f"Redis did not answer within {self._timeout:g}s") from None
        except BaseException as exc:  # the whole round trip failed: every caller of it gets the error
            error = exc if isinstance(exc, Exception) else rex.ConnectionError("Redis call cancelled")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        at = 0
        for mine, future in batch:
            if not future.done():
                future.set_result(replies[at : at + len(mine)])
            at += len(mine)
