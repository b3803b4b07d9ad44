"""Helpers shared by the lock tests: stubs, request builders, Describe shortcuts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.lock.v1 import lock_pb2 as pb
from coord.lock.v1 import lock_pb2_grpc

X = pb.LOCK_MODE_EXCLUSIVE
S = pb.LOCK_MODE_SHARED
Stub = lock_pb2_grpc.LockServiceStub


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(round(seconds * 1000))
    return d


@contextmanager
def lock_stub(target: str) -> Iterator[Stub]:
    with grpc.insecure_channel(target) as channel:
        yield Stub(channel)


def acquire(
    stub: Stub,
    name: str = "L",
    *,
    mode: int = X,
    ttl: float = 60,
    wait: float = 0,
    owner: str = "",
    limit: int | None = None,
    timeout: float = 30,
) -> pb.AcquireResponse:
    request = pb.AcquireRequest(name=name, mode=mode, ttl=dur(ttl), wait=dur(wait), owner=owner)  # type: ignore[arg-type]
    if limit is not None:
        request.limit = limit
    return stub.Acquire(request, timeout=timeout)


def release(stub: Stub, name: str, token: str) -> int:
    return stub.Release(pb.ReleaseRequest(name=name, lock_token=token)).outcome


def describe(stub: Stub, name: str = "L") -> pb.DescribeResponse:
    return stub.Describe(pb.DescribeRequest(name=name))


def queue_length(stub: Stub, name: str = "L") -> int:
    return describe(stub, name).queue_length


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
    return info


class HoldStream:
    """A Hold stream driven from a test: ``send`` requests, ``next`` responses, ``cut`` to break it."""

    _END = object()

    def __init__(self, stub: Stub, timeout: float = 60) -> None:
        import queue

        self._out: queue.Queue[object] = queue.Queue()
        self._call = stub.Hold(self._requests(), timeout=timeout)

    def _requests(self) -> Iterator[pb.HoldRequest]:
        while True:
            item = self._out.get()
            if item is self._END:
                return
            assert isinstance(item, pb.HoldRequest)
            yield item

    def send(self, request: pb.HoldRequest) -> None:
        self._out.put(request)

    def acquire(self, name: str = "L", **kwargs: object) -> None:
        self.send(pb.HoldRequest(acquire=pb.AcquireRequest(name=name, **kwargs)))  # type: ignore[arg-type]

    def heartbeat(self, ttl: float | None = None) -> None:
        beat = pb.HoldHeartbeat(ttl=dur(ttl)) if ttl is not None else pb.HoldHeartbeat()
        self.send(pb.HoldRequest(heartbeat=beat))

    def next(self) -> pb.HoldResponse:
        return next(self._call)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Half-close: the client sends no more messages."""
        self._out.put(self._END)

    def cut(self) -> None:
        """Break the stream (client-side cancel)."""
        self._call.cancel()
