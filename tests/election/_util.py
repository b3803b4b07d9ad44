"""Helpers shared by the election tests: stubs, a Campaign stream driven from a test, an Observe
stream read in the background."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from google.protobuf import duration_pb2

from coord.election.v1 import election_pb2 as pb
from coord.election.v1 import election_pb2_grpc

Stub = election_pb2_grpc.ElectionServiceStub


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(round(seconds * 1000))
    return d


@contextmanager
def election_stub(target: str) -> Iterator[Stub]:
    with grpc.insecure_channel(target) as channel:
        yield Stub(channel)


def leader(stub: Stub, name: str = "E") -> pb.LeaderResponse:
    return stub.Leader(pb.LeaderRequest(name=name))


class CampaignStream:
    """A Campaign stream driven from a test: ``send`` requests, ``next`` responses, ``cut`` to break it."""

    _END = object()

    def __init__(self, stub: Stub, timeout: float = 60) -> None:
        self._out: queue.Queue[object] = queue.Queue()
        self._call = stub.Campaign(self._requests(), timeout=timeout)

    def _requests(self) -> Iterator[pb.CampaignRequest]:
        while True:
            item = self._out.get()
            if item is self._END:
                return
            assert isinstance(item, pb.CampaignRequest)
            yield item

    def send(self, request: pb.CampaignRequest) -> None:
        self._out.put(request)

    def join(self, name: str = "E", value: bytes = b"", ttl: float | None = None) -> None:
        join = pb.CampaignJoin(name=name, value=value, ttl=dur(ttl) if ttl is not None else None)
        self.send(pb.CampaignRequest(join=join))

    def keep_alive(self) -> None:
        self.send(pb.CampaignRequest(keep_alive=pb.CampaignKeepAlive()))

    def resign(self) -> None:
        self.send(pb.CampaignRequest(resign=pb.CampaignResign()))

    def next(self) -> pb.CampaignResponse:
        return next(self._call)  # type: ignore[no-any-return]

    def elected(self, name: str = "E", value: bytes = b"", ttl: float | None = None) -> pb.Leadership:
        """Join and wait for the election (skipping a queued answer)."""
        self.join(name, value, ttl)
        answer = self.next()
        if answer.WhichOneof("kind") == "queued":
            answer = self.next()
        assert answer.WhichOneof("kind") == "elected", answer
        return answer.elected

    def close(self) -> None:
        """Half-close: the client sends no more messages."""
        self._out.put(self._END)

    def cut(self) -> None:
        """Break the stream (client-side cancel)."""
        self._call.cancel()


class Observing:
    """An Observe stream read by a thread into a queue; ``next`` takes the next response in order."""

    def __init__(self, stub: Stub, name: str = "E", after: str = "", timeout: float = 60) -> None:
        self.responses: queue.Queue[pb.ObserveResponse | BaseException | None] = queue.Queue()
        self._call = stub.Observe(pb.ObserveRequest(name=name, after_revision=after), timeout=timeout)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self._call:
                self.responses.put(response)
            self.responses.put(None)
        except grpc.RpcError as error:
            self.responses.put(error)

    def next(self, timeout: float = 20) -> pb.ObserveResponse:
        item = self.responses.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        assert item is not None, "the Observe stream ended"
        return item

    def cancel(self) -> None:
        self._call.cancel()
        self._thread.join(10)
