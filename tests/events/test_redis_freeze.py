"""Subscribe while Redis is frozen or restarting: a stream either works or ends with UNAVAILABLE and
its cursors, within a bound; none is left open with nothing to say (the rare hang of a resubscribe
made during a Redis restart). Redis is frozen with SIGSTOP (it keeps its connections and answers
nothing, like a partitioned or paused server) and killed and restarted on the same port."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from coord.events.v1 import events_pb2, events_pb2_grpc
from coord_server.events.readers import readers_of

from ..conftest import CoordThread, RedisProcess, wait_for
from .helpers import EARLIEST, Stream, error_info, id_pair, ms, publish

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@contextlib.contextmanager
def frozen(backing: RedisProcess) -> Iterator[None]:
    assert backing.proc is not None
    os.kill(backing.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(backing.proc.pid, signal.SIGCONT)


def _cursor_request(topics: list[str], cursors: dict[str, str]) -> events_pb2.SubscribeRequest:
    return events_pb2.SubscribeRequest(
        topics=topics,
        start=EARLIEST,
        cursors=[events_pb2.TopicCursor(topic=t, after_id=i) for t, i in sorted(cursors.items())],
        heartbeat_interval=ms(200),
    )


def test_streams_opened_or_open_while_redis_is_frozen_end_with_their_cursors_and_resume(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()
    server = start_coord(backing.url)
    topics = ["frz.a", "frz.b"]
    with grpc.insecure_channel(server.target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        before = {t: publish(stub, t, b"before") for t in topics}
        live = Stream(stub.Subscribe(_cursor_request(topics, {})))
        got = live.events(2)
        cursors = {e.topic: e.id for e in got}
        assert cursors == before
        with frozen(backing):
            # The live stream's reader gets no answer: its read ends within its block time plus the
            # Redis timeout, and the stream with it, naming the cursors to resume from.
            error = live.wait_error(30)
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            info = error_info(error)
            assert info.reason == "EVENTS_STREAM_INTERRUPTED"
            assert json.loads(info.metadata["cursors"]) == cursors
            # Resubscribing meanwhile: the topic's new reader cannot start (its first XINFO gets no
            # answer), and the stream ends saying so instead of waiting on it.
            again = Stream(stub.Subscribe(_cursor_request(topics, cursors)))
            error = again.wait_error(30)
            assert error.code() in RETRYABLE, error
        # Redis answers again: resuming from the cursors misses nothing and repeats nothing.
        after = {t: _publish_retrying(stub, t, b"after") for t in topics}
        resumed = _subscribe_retrying(stub, topics, cursors)
        got = resumed.events(2)
        assert {e.topic: (e.id, e.data) for e in got} == {t: (after[t], b"after") for t in topics}
        assert all(f.WhichOneof("frame") != "gap" for f in resumed.quiet(0.3))
        resumed.cancel()
    readers = readers_of(server.app.redis) if server.app is not None else None
    assert readers is not None
    wait_for(lambda: readers.connections() == 0, "the readers closing with their last topic")


def _publish_retrying(stub: events_pb2_grpc.EventsServiceStub, topic: str, data: bytes) -> str:
    end = time.monotonic() + 30
    while True:
        try:
            return publish(stub, topic, data)
        except grpc.RpcError as error:
            assert error.code() in RETRYABLE and time.monotonic() < end, error
            time.sleep(0.05)


def _subscribe_retrying(
    stub: events_pb2_grpc.EventsServiceStub, topics: list[str], cursors: dict[str, str]
) -> Stream:
    end = time.monotonic() + 30
    while True:
        stream = Stream(stub.Subscribe(_cursor_request(topics, cursors)))
        frame = stream.frames.get(timeout=30)
        if frame is not None:
            assert frame.WhichOneof("frame") == "subscribed"
            return stream
        assert stream.error is not None and stream.error.code() in RETRYABLE, stream.error
        assert time.monotonic() < end
        time.sleep(0.05)


# -- many resubscriptions across Redis restarts ------------------------------------------------------

TOTAL = 300
SILENT_AFTER = 10.0  # a stream with no frame and no status for this long is a hang (heartbeat: 200 ms)


class Reader:
    """Resubscribes from its cursors whenever its stream ends; counts streams that went silent."""

    def __init__(self, target: str, topics: list[str]) -> None:
        self.target = target
        self.topics = topics
        self.events: list[tuple[str, str]] = []
        self.cursors: dict[str, str] = {}
        self.silent = 0
        self.streams = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with grpc.insecure_channel(self.target) as channel:
                stub = events_pb2_grpc.EventsServiceStub(channel)
                while not self.stop.is_set():
                    self.streams += 1
                    self._one(stub.Subscribe(_cursor_request(self.topics, self.cursors)))
        except BaseException as exc:
            self.error = exc

    def _one(self, call: Any) -> None:
        last = [time.monotonic()]
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.1):
                if self.stop.is_set() or time.monotonic() - last[0] > SILENT_AFTER:
                    if not self.stop.is_set():
                        self.silent += 1
                    call.cancel()
                    return

        threading.Thread(target=watch, daemon=True).start()
        try:
            for frame in call:
                last[0] = time.monotonic()
                assert frame.WhichOneof("frame") != "gap", frame
                if frame.WhichOneof("frame") == "events":
                    for event in frame.events.events:
                        self.events.append((event.topic, event.id))
                        self.cursors[event.topic] = event.id
        except grpc.RpcError as error:
            assert error.code() in (*RETRYABLE, grpc.StatusCode.CANCELLED), error
            time.sleep(0.02)
        finally:
            done.set()


def test_resubscribing_across_redis_restarts_never_leaves_a_silent_stream(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    """Six readers resubscribe (from their cursors) whenever their stream ends while Redis is killed
    and restarted five times under a publisher: no stream ever goes silent (no frame, no status),
    and every reader gets exactly the acknowledged events, in order."""
    backing = redis_factory(extra=("--appendonly", "yes", "--appendfsync", "always"))
    server = start_coord(backing.url)
    topics = ["rs.a", "rs.b"]
    readers = [Reader(server.target, topics if n % 2 else ["rs.*"]) for n in range(6)]
    acked: dict[str, list[str]] = {t: [] for t in topics}
    done = threading.Event()

    def publish_all() -> None:
        with grpc.insecure_channel(server.target) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            for n in range(TOTAL):
                topic = topics[n % 2]
                request = events_pb2.PublishRequest(topic=topic, data=b"%d" % n, dedup_id=f"n{n}")
                end = time.monotonic() + 60
                while True:
                    try:
                        reply = stub.Publish(request, timeout=5)
                        break
                    except grpc.RpcError as error:
                        assert error.code() in RETRYABLE and time.monotonic() < end, error
                        time.sleep(0.02)
                acked[topic].append(reply.id)
        done.set()

    for reader in readers:
        reader.thread.start()
    publisher = threading.Thread(target=publish_all, daemon=True)
    publisher.start()
    try:
        for round_ in range(5):
            wait_for(lambda r=round_: sum(map(len, acked.values())) > (r + 1) * TOTAL // 7, "publishes")
            assert backing.proc is not None
            backing.proc.kill()
            backing.proc.wait(10)
            backing.proc = None
            backing.start()
        publisher.join(90)
        assert done.is_set(), "the publisher did not finish"
        want = sum(map(len, acked.values()))
        for reader in readers:
            wait_for(lambda r=reader: len(set(r.events)) >= want or r.error is not None, "every event", 60)
    finally:
        for reader in readers:
            reader.stop.set()
        for reader in readers:
            reader.thread.join(30)
    print(f"\nstreams per reader: {[r.streams for r in readers]}; silent: {[r.silent for r in readers]}")
    for reader in readers:
        assert reader.error is None, reader.error
        assert reader.silent == 0, "a stream sent nothing, not even its status"
        for topic in topics:
            ids = [i for t, i in reader.events if t == topic]
            assert all(id_pair(a) < id_pair(b) for a, b in itertools.pairwise(ids)), f"{topic} went back"
            assert ids == acked[topic]
