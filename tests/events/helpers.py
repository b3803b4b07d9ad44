"""Test helpers for the Events service: a stream reader with timeouts, and small builders."""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import redis
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.events.v1 import events_pb2, events_pb2_grpc

LATEST = events_pb2.START_POSITION_LATEST
EARLIEST = events_pb2.START_POSITION_EARLIEST
AT_TIME = events_pb2.START_POSITION_AT_TIME


def ms(millis: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(millis)
    return d


def id_pair(text: str) -> tuple[int, int]:
    a, b = text.split("-")
    return int(a), int(b)


class Stream:
    """Reads a response stream on a thread, so tests can wait for frames with a timeout."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.frames: queue.Queue[Any] = queue.Queue()
        self.error: grpc.RpcError | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for frame in self.call:
                self.frames.put(frame)
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.done.set()
            self.frames.put(None)

    def next(self, timeout: float = 10.0) -> Any:
        frame = self.frames.get(timeout=timeout)
        if frame is None:
            self.frames.put(None)
            raise AssertionError(f"stream ended: {self.error!r}")
        return frame

    def next_of(self, kind: str, timeout: float = 10.0) -> Any:
        """The next frame of ``kind`` (skipping other kinds)."""
        end = time.monotonic() + timeout
        while True:
            frame = self.next(max(0.01, end - time.monotonic()))
            if frame.WhichOneof("frame") == kind:
                return getattr(frame, kind)

    def events(self, count: int, timeout: float = 10.0) -> list[events_pb2.Event]:
        out: list[events_pb2.Event] = []
        end = time.monotonic() + timeout
        while len(out) < count:
            frame = self.next(max(0.01, end - time.monotonic()))
            if frame.WhichOneof("frame") == "events":
                out.extend(frame.events.events)
        return out

    def quiet(self, seconds: float) -> list[Any]:
        """Frames that arrive within ``seconds`` (expected: none of the ones a test forbids)."""
        out = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                frame = self.frames.get(timeout=left)
            except queue.Empty:
                break
            if frame is None:
                self.frames.put(None)
                break
            out.append(frame)
        return out

    def wait_error(self, timeout: float = 10.0) -> grpc.RpcError:
        assert self.done.wait(timeout), "stream did not end"
        assert self.error is not None
        return self.error

    def cancel(self) -> None:
        self.call.cancel()
        self.done.wait(5)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo")


def publish(stub: events_pb2_grpc.EventsServiceStub, topic: str, data: bytes, **kw: Any) -> str:
    return str(stub.Publish(events_pb2.PublishRequest(topic=topic, data=data, **kw)).id)


def publish_many(stub: events_pb2_grpc.EventsServiceStub, topic: str, datas: list[bytes]) -> list[str]:
    reply = stub.BatchPublish(
        events_pb2.BatchPublishRequest(
            requests=[events_pb2.PublishRequest(topic=topic, data=d) for d in datas]
        )
    )
    return [r.id for r in reply.responses]


def subscribe(stub: events_pb2_grpc.EventsServiceStub, *topics: str, **kw: Any) -> Stream:
    kw.setdefault("start", LATEST)
    return Stream(stub.Subscribe(events_pb2.SubscribeRequest(topics=list(topics), **kw)))


class Requests:
    """A request iterator for a bidirectional call that tests feed from the outside."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    def send(self, request: events_pb2.ConsumeRequest) -> None:
        self._queue.put(request)

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[events_pb2.ConsumeRequest]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item


class Consumer:
    def __init__(self, stub: events_pb2_grpc.EventsServiceStub, topic: str, group: str, **start: Any) -> None:
        start.setdefault("group_start", EARLIEST)
        self.requests = Requests()
        self.requests.send(
            events_pb2.ConsumeRequest(start=events_pb2.ConsumeStart(topic=topic, group=group, **start))
        )
        self.stream = Stream(stub.Consume(iter(self.requests)))
        self.started = self.stream.next_of("started")

    def credit(self, n: int) -> None:
        self.requests.send(events_pb2.ConsumeRequest(credit=events_pb2.ConsumeCredit(count=n)))

    def ack(self, *ids: str) -> None:
        self.requests.send(events_pb2.ConsumeRequest(ack=events_pb2.ConsumeAck(ids=list(ids))))

    def nack(self, *ids: str, delay_ms: int = 0) -> None:
        self.requests.send(
            events_pb2.ConsumeRequest(nack=events_pb2.ConsumeNack(ids=list(ids), delay=ms(delay_ms)))
        )

    def extend(self, *ids: str) -> None:
        self.requests.send(events_pb2.ConsumeRequest(extend=events_pb2.ConsumeExtend(ids=list(ids))))

    def events(self, count: int, timeout: float = 10.0) -> list[events_pb2.Event]:
        return self.stream.events(count, timeout)

    def close(self) -> None:
        self.requests.close()
        self.stream.cancel()


# Commands that are no call's own work: what a server sends on its own clock (each topic reader's
# XREAD BLOCK, re-sent every block period; the health probe's PING), the handshake of a connection
# (a topic reader opens its own, and asks its CLIENT ID), and a reader woken for a new topic.
NOT_PER_CALL = frozenset(
    {"xread", "ping", "hello", "client|setinfo", "select", "client|id", "client|unblock"}
)


def redis_commands(client: redis.Redis) -> Counter[str]:
    """Commands Redis has run so far (INFO commandstats, including those inside scripts), by name,
    leaving out NOT_PER_CALL ones: the difference of two readings is what the calls between cost."""
    stats = client.info("commandstats")
    calls = Counter({name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()})
    for name in NOT_PER_CALL:
        del calls[name]
    return calls
