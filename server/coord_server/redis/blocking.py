"""Connections of their own for blocking stream reads (XREAD BLOCK), and a way to end a wait early.

A blocking read holds its connection for as long as it waits, so it cannot share the pipelined
connection or the pools every other call borrows from. A :class:`BlockingConnection` is one connection
opened for such reads alone: on a single node (or the primary a Sentinel names) from the client's own
connection settings (TLS, password, database), on a Redis Cluster to one node. Its owner decides how
many there are; nothing here pools them.

Every call on it is bounded like any Redis call (``RedisBackend.bounded``), plus the time the read
may block: a Redis that stops answering (a frozen process, a dead peer without a TCP reset) ends the
read with BackendUnavailable after ``block + COORD_REDIS_TIMEOUT``, never a hang. Any failure leaves
the connection closed; the next call opens a new one.

:meth:`BlockingConnection.wake` ends a blocked read at once, as if its block time had run out:
``CLIENT UNBLOCK <id>`` sent to the same node over an ordinary pooled connection, with the id that
``CLIENT ID`` gave when the connection opened. Redis answers 0 when the connection is not blocked at
that moment (the read is still on its way, or already answered): the caller decides whether to try
again. Without permission for ``CLIENT ID`` (an ACL user set up before Coord used it) the connection
still reads; it only cannot be woken early (its ``client_id`` is None, and :meth:`wake` says False).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
import redis.exceptions as rex
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import BackendUnavailable
from .commands import StreamEntry
from .executor import text
from .states import backend_state

if TYPE_CHECKING:
    from .backend import RedisBackend

log = logging.getLogger(__name__)

# One stream of an XREAD: its key and the id to read after.
StreamAfter = tuple[str, str]
# What an XREAD returned: per stream that had entries, its key and the entries.
StreamBatch = tuple[str, list[StreamEntry]]

_warned_no_client_id = False


@dataclass(frozen=True)
class Route:
    """Where a key is read: the node's name ("" on a single node) and, on a Redis Cluster, the key's
    hash slot. One XREAD may only name keys of one slot on a Cluster; on a single node any keys."""

    node: str
    slot: int | None


async def route(backend: RedisBackend, key: str) -> Route:
    """The node and slot ``key`` is read from now (after a failover or a reshard, ask again)."""
    client = backend._client
    if not isinstance(client, RedisCluster):
        return Route("", None)
    try:
        await backend.bounded(client.initialize())  # a no-op once the slot map is known
        node = client.get_node_from_key(key)
    except rex.SlotNotCoveredError:
        raise BackendUnavailable("no Redis Cluster node serves the topic's slot") from None
    if node is None:
        raise BackendUnavailable("no Redis Cluster node serves the topic's slot")
    return Route(node.name, client.keyslot(key))


class BlockingConnection:
    """One connection to one node for blocking reads; one task uses it at a time."""

    def __init__(self, backend: RedisBackend, node: str) -> None:
        self._backend = backend
        self.node = node
        self._conn: Any = None
        self.client_id: int | None = None

    async def xread(
        self, streams: Sequence[StreamAfter], count: int, block_ms: int | None
    ) -> list[StreamBatch]:
        """``XREAD COUNT count [BLOCK block_ms] STREAMS k1 k2 ... id1 id2 ...``: up to ``count`` entries
        of each stream after its id; with ``block_ms``, waiting that long for the first one."""
        command: list[str | int] = ["XREAD", "COUNT", count]
        if block_ms is not None:
            command += ["BLOCK", block_ms]
        command += ["STREAMS", *(key for key, _ in streams), *(after for _, after in streams)]
        waiting = (block_ms or 0) / 1000
        [reply] = await self._roundtrip([command], waiting)
        return _batches(_checked(reply))

    async def xread_each(self, groups: Sequence[Sequence[StreamAfter]], count: int) -> list[StreamBatch]:
        """One XREAD without BLOCK per group of streams, pipelined in one round trip (on a Cluster,
        one group per slot); the batches of all of them. An error reply of any raises."""
        commands: list[list[str | int]] = [
            ["XREAD", "COUNT", count, "STREAMS", *(k for k, _ in group), *(a for _, a in group)]
            for group in groups
        ]
        batches: list[StreamBatch] = []
        for reply in await self._roundtrip(commands, 0.0):
            batches += _batches(_checked(reply))
        return batches

    async def wake(self) -> bool:
        """End this connection's blocked read now (it returns as if its block time ran out); False
        when it is not blocked at this moment, or cannot be woken."""
        client_id = self.client_id
        if client_id is None or self._conn is None:
            return False
        client = self._backend._client
        reply: Any
        if isinstance(client, RedisCluster):
            node = client.get_node(node_name=self.node)
            if node is None:
                return False
            reply = await self._backend.bounded(node.execute_command("CLIENT", "UNBLOCK", client_id))
        else:
            reply = await self._backend.bounded(client.client_unblock(client_id))
        return bool(int(reply))

    async def aclose(self) -> None:
        """Close the connection (never raises); the next read opens a new one."""
        conn, self._conn = self._conn, None
        self.client_id = None
        if conn is not None:
            try:
                await conn.disconnect(nowait=True)
            except Exception as exc:  # it may be gone already
                log.debug("closing a blocking-read connection failed: %r", exc)

    # -- internals ---------------------------------------------------------------------------------

    async def _roundtrip(self, commands: Sequence[Sequence[str | int]], waiting: float) -> list[Any]:
        """Send ``commands`` in one write and read their replies (an error reply in its place),
        bounded; any failure closes the connection before it is raised."""
        try:
            conn = self._conn or await self._open()
            return await self._backend.bounded(_exchange(conn, commands), waiting=waiting)
        except BaseException:
            # Cancelled or failed mid-read: the reply would arrive later, so the connection is done.
            await self.aclose()
            raise

    async def _open(self) -> Any:
        conn = self._make()
        try:
            await self._backend.bounded(conn.connect())
            [reply] = await self._backend.bounded(_exchange(conn, [("CLIENT", "ID")]))
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
            raise
        if isinstance(reply, Exception):
            _no_client_id(reply)
            self.client_id = None
        else:
            self.client_id = int(reply)
        self._conn = conn
        return conn

    def _make(self) -> Any:
        client = self._backend._client
        if isinstance(client, RedisCluster):
            node: ClusterNode | None = client.get_node(node_name=self.node)
            if node is None:
                raise BackendUnavailable(f"Redis Cluster node {self.node} is no longer known")
            # No retries, as for every other call: the caller's bound decides how long it waits.
            return node.connection_class(**{**node.connection_kwargs, "retry": Retry(NoBackoff(), 0)})
        pool = client.connection_pool
        # Outside the pool: it never counts against the pool's limit, and closing it is ours alone.
        connection: aioredis.Connection = pool.make_connection()  # type: ignore[no-untyped-call]
        return connection


async def _exchange(conn: Any, commands: Sequence[Sequence[str | int]]) -> list[Any]:
    await conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await conn.read_response())
        except rex.ResponseError as exc:  # an error reply: read whole, the connection stays in step
            replies.append(exc)
    return replies


def _checked(reply: Any) -> Any:
    """``reply``, or the error it is raised: an error reply that means Redis cannot serve now
    (LOADING, a slot that moved...) as BackendUnavailable, any other as the ReplyError it is."""
    if not isinstance(reply, Exception):
        return reply
    state = backend_state(reply)
    if state is None and isinstance(reply, rex.AskError):  # MOVED or ASK: the slot is elsewhere now
        state = BackendUnavailable("the Redis Cluster slot moved", metadata={"state": "MOVED"})
        state.__cause__ = reply
    if state is not None:
        raise state
    raise reply


def _batches(reply: Any) -> list[StreamBatch]:
    """XREAD's reply ([[key, [[id, [field, value, ...]], ...]], ...], a map of the same in RESP3, or
    nil) as (key, entries) pairs."""
    batches: list[StreamBatch] = []
    pairs = reply.items() if isinstance(reply, dict) else (reply or ())
    for raw_key, raw_entries in pairs:
        entries: list[StreamEntry] = []
        for raw_id, flat in raw_entries:
            if flat is None:
                continue
            if isinstance(flat, dict):
                fields = flat
            else:
                fields = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
            entries.append((raw_id, fields))
        batches.append((text(raw_key), entries))
    return batches


def _no_client_id(error: Exception) -> None:
    global _warned_no_client_id
    if not _warned_no_client_id:
        _warned_no_client_id = True
        log.warning(
            "CLIENT ID was refused (%s): topic readers cannot be woken early, so a topic joins a "
            "reader only when its current read ends; grant +client|id +client|unblock (docs/security.md)",
            error,
        )


async def refresh_routes(backend: RedisBackend) -> None:
    """Read the Redis Cluster's slot map again (after a read was told its slot moved); never raises."""
    client = backend._client
    if isinstance(client, RedisCluster):
        try:
            await backend.bounded(client.nodes_manager.initialize())
        except Exception as exc:
            log.debug("refreshing the Redis Cluster slot map failed: %r", exc)
