"""What Redis says about itself and its keyspace: INFO, SCAN and MEMORY USAGE, per node.

Read-only commands for the admin statistics (``admin/stats.py``) and the eviction check at start-up
(``eviction.py``). On a Redis Cluster each one is sent to every master, since each master reports
only its own memory and keys; on a single node (Sentinel's primary, the embedded Redis) to the one
node. Every call is bounded like a script call (``RedisBackend.bounded``), and none is ever KEYS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster

from .backend import RedisBackend


@dataclass(frozen=True)
class Node:
    """One Redis node to ask: ``address`` as shown to people (never a password)."""

    address: str
    target: ClusterNode | None  # None: the backend's only node


@dataclass(frozen=True)
class ScanPage:
    """One SCAN reply of one node: the cursor to continue from (0: done) and the keys."""

    cursor: int
    keys: list[bytes]


def nodes(backend: RedisBackend) -> list[Node]:
    """The nodes that hold data: every master of a cluster, or the one node."""
    client = backend._client  # the Redis layer owns its client
    if isinstance(client, RedisCluster):
        return [Node(node.name, node) for node in client.get_primaries()]
    return [Node(backend.description, None)]


async def refresh(backend: RedisBackend) -> None:
    """On a cluster, make sure the slot map is known (the first call may precede any script)."""
    client = backend._client
    if isinstance(client, RedisCluster):
        await backend.bounded(client.initialize())


async def info(backend: RedisBackend, node: Node, section: str) -> dict[str, Any]:
    """``INFO <section>`` of ``node``, parsed by redis-py (numbers as numbers)."""
    client = backend._client
    if node.target is None:
        reply: Any = await backend.bounded(client.info(section))
    else:
        assert isinstance(client, RedisCluster)
        reply = await backend.bounded(client.info(section, target_nodes=node.target))
    return dict(reply)


async def scan(backend: RedisBackend, node: Node, cursor: int, match: str, count: int) -> ScanPage:
    """One ``SCAN cursor MATCH match COUNT count`` on ``node``."""
    client = backend._client
    # Coord's client returns bytes; redis-py's stubs allow str too.
    keys: Any
    if node.target is None:
        next_cursor, keys = await backend.bounded(client.scan(cursor, match=match, count=count))
        return ScanPage(int(next_cursor), list(keys))
    assert isinstance(client, RedisCluster)
    # On a cluster the cursor comes back per node: {node name: cursor}.
    cursors: Any
    cursors, keys = await backend.bounded(
        client.scan(cursor, match=match, count=count, target_nodes=node.target)
    )
    return ScanPage(int(cursors.get(node.target.name, 0)), list(keys))


async def memory_usage(backend: RedisBackend, keys: Sequence[bytes]) -> list[int | None]:
    """``MEMORY USAGE`` of each key, pipelined (routed by key on a cluster); None for a key that
    expired since it was seen."""
    if not keys:
        return []
    pipe = backend._client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
    replies = await backend.bounded(pipe.execute())
    return [None if reply is None else int(reply) for reply in replies]
