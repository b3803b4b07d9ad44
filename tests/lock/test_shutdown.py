"""A graceful server shutdown releases the locks its Hold streams held, instead of leaving them to the TTL."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import duration_pb2

from coord.lock.v1 import lock_pb2 as pb
from coord.lock.v1 import lock_pb2_grpc

from ..conftest import CoordThread, RedisProcess


def test_shutdown_releases_held_locks(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()
    server = start_coord(backing.url)
    outbox: queue.Queue[pb.HoldRequest | None] = queue.Queue()

    def requests() -> Iterator[pb.HoldRequest]:
        while (item := outbox.get()) is not None:
            yield item

    outbox.put(
        pb.HoldRequest(
            acquire=pb.AcquireRequest(
                name="jobs", mode=pb.LOCK_MODE_EXCLUSIVE, ttl=duration_pb2.Duration(seconds=300)
            )
        )
    )
    channel = grpc.insecure_channel(server.target)
    replies = lock_pb2_grpc.LockServiceStub(channel).Hold(requests())
    first: Any = next(replies)
    assert first.WhichOneof("kind") == "acquired"
    with backing.client() as r:
        holders = [k for k in r.scan_iter("coord:*{jobs}:h")]
        assert holders and r.zcard(holders[0]) == 1

    drained = threading.Thread(target=lambda: list(_drain(replies)))
    drained.start()
    server.stop()  # graceful: cancels the stream, must release the grant before closing Redis
    drained.join(10)
    outbox.put(None)
    channel.close()
    with backing.client() as r:
        assert r.zcard(holders[0]) == 0, "the lock outlived the server that held it for a Hold stream"


def _drain(replies: Any) -> Iterator[Any]:
    try:
        yield from replies
    except grpc.RpcError:
        return
