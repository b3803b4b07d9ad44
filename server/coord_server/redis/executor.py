"""The one executor interface every connection mode implements, and the plain redis-py mode.

An executor sends a batch of commands and returns their replies in order, a failed command's
exception (an error reply: a script's error, NOSCRIPT, READONLY...) in its place, within a time
budget. It knows nothing of scripts, deadlines or domain errors: :class:`~.backend.RedisBackend`
builds the commands (EVALSHA, then EVAL for those Redis did not have cached), computes the budget
and maps failures. The modes:

- :class:`~.pipe.RespPipe`: one shared, self-pipelining connection to a single node (TCP or unix
  socket), the hot path.
- :class:`~.coalesce.Coalescer`: redis-py, with concurrent batches merged into pipelines (Redis
  Cluster, TLS, or a single node without hiredis).
- :class:`Direct`: redis-py, one round trip per batch on pooled connections (``coalesce=False``, the
  baseline the ``levers.coalesce`` benchmark compares against).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, TypeAlias

import redis.asyncio as aioredis
import redis.exceptions as rex
from redis.asyncio.cluster import RedisCluster

Arg: TypeAlias = str | bytes | int | float
# One command as Redis receives it: ("EVALSHA", sha, 2, key1, key2, arg1, ...).
Command: TypeAlias = Sequence[Arg]
Client: TypeAlias = aioredis.Redis | RedisCluster

# An error reply from Redis (a script's error, a command's): what a failed command puts in its place.
ReplyError = rex.ResponseError

# Errors that mean "Redis is not there or not answering", as opposed to a bad command: raised for a
# whole batch by an executor, or (READONLY, LOADING, MASTERDOWN, TRYAGAIN...) one command's reply.
UNAVAILABLE: tuple[type[Exception], ...] = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.BusyLoadingError,
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.MasterDownError,
    rex.ReadOnlyError,
    rex.ClusterError,
    # Not a RedisError: redis-py's cluster client raises it when refreshing its slot map finds no node
    # it can connect to ("Redis Cluster cannot be connected"), or nodes that disagree mid-failover.
    rex.RedisClusterException,
    rex.MaxConnectionsError,
    ConnectionError,
    OSError,
)


def text(value: Any) -> str:
    """A Redis reply (bytes, or a number) as text; keys Coord wrote as UTF-8 come back as they went in."""
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else str(value)


class Executor(Protocol):
    """Sends commands to Redis. Every connection mode implements this and nothing more."""

    async def execute(self, commands: Sequence[Command], budget: float) -> list[Any]:
        """Send ``commands``; their replies in order, a failed command's exception in its place.

        Raises TimeoutError when the replies are not all there within ``budget`` seconds (the
        commands may still run on Redis), and a connection error (``UNAVAILABLE``) when the batch
        could not be sent or answered. ``commands`` is never empty.
        """
        ...

    async def aclose(self, drain_timeout: float) -> None:
        """Stop: wait up to ``drain_timeout`` for work in flight that no caller awaits, then let go
        of the connections this executor owns (not the redis-py client, which the backend closes)."""
        ...


async def send(client: Client, commands: Sequence[Command]) -> list[Any]:
    """``commands`` through redis-py: one command as itself, more as one pipeline (not a transaction).

    On a cluster, redis-py routes each command by its keys (EVALSHA and EVAL by their KEYS) and sends
    a pipeline per node, concurrently.
    """
    if len(commands) == 1:
        try:
            return [await client.execute_command(*commands[0])]
        except rex.ResponseError as exc:  # an error reply: in its place, like a pipeline's
            return [exc]
    pipe = client.pipeline(transaction=False)
    for command in commands:
        # execute_command: redis-py blocks pipe.evalsha() on clusters, but routes EVALSHA by its keys.
        pipe.execute_command(*command)
    return list(await pipe.execute(raise_on_error=False))


class Direct:
    """Plain redis-py: each batch is one round trip on a pooled connection, nothing shared."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def execute(self, commands: Sequence[Command], budget: float) -> list[Any]:
        # asyncio.timeout, not wait_for: no extra Task per call.
        async with asyncio.timeout(budget):
            return await send(self._client, commands)

    async def aclose(self, drain_timeout: float) -> None:
        return None
