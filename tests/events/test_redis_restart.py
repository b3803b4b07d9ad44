"""Redis (AOF, fsync always) killed and restarted on the same port while a publisher writes and several
subscribers read: every subscriber resumes and misses nothing that Publish acknowledged."""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

import grpc

from coord.events.v1 import events_pb2, events_pb2_grpc

from .helpers import EARLIEST, error_info, id_pair, ms

TOPICS = ["aof.a", "aof.b"]
TOTAL = 400
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
RETRY_PAUSE = 0.05  # between attempts while Redis is down (nothing to await: it is a process restart)
HEARTBEAT_MS = 200
STALL_AFTER = 3.0  # seconds without any frame, heartbeats included


class Log:
    """What one reader received, shared with the test thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[tuple[str, str, int]] = []  # (topic, id, number) in arrival order
        self.unique: set[tuple[str, str]] = set()
        self.interruptions = 0
        self.stalls = 0
        self.changed = threading.Condition()
        self.error: BaseException | None = None

    def add(self, topic: str, event_id: str, data: bytes) -> None:
        with self.changed:
            self.events.append((topic, event_id, int(data)))
            self.unique.add((topic, event_id))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float, hint: str = "") -> None:
        with self.changed:
            self.changed.wait_for(lambda: len(self.unique) >= count or self.error is not None, timeout)
        assert self.error is None, self.error
        last = {t: i for t, i, _ in self.events}
        assert len(self.unique) >= count, (
            f"{self.name}: only {len(self.unique)} of {count} events arrived; last ids {last}, "
            f"{self.interruptions} interruptions {hint}"
        )


def _publish_all(target: str, acked: dict[str, list[str]], progress: threading.Condition) -> None:
    """Publish 0..TOTAL-1, each retried with its dedup id until acknowledged (a retry after a lost
    reply returns the first id, so each number is stored once)."""
    with grpc.insecure_channel(target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        for n in range(TOTAL):
            topic = TOPICS[n % 2]
            request = events_pb2.PublishRequest(topic=topic, data=b"%d" % n, dedup_id=f"n{n}")
            end = time.monotonic() + 60
            while True:
                try:
                    reply = stub.Publish(request, timeout=5)
                    break
                except grpc.RpcError as error:
                    assert error.code() in RETRYABLE, error
                    assert time.monotonic() < end, "Redis never came back"
                    time.sleep(RETRY_PAUSE)
            with progress:
                acked[topic].append(reply.id)
                progress.notify_all()


def _raw_reader(target: str, topics: list[str], log: Log, stop: threading.Event, from_error: bool) -> None:
    """A reader on raw stubs: on UNAVAILABLE it resubscribes from its cursors. With ``from_error`` it
    takes them from the error's metadata (checking they match what it received); otherwise it uses the
    last id it received per topic. As the docs tell clients to, it treats a stream that sends nothing
    (not even a Progress heartbeat) for STALL_AFTER as dead, and resubscribes."""
    cursors: dict[str, str] = {}
    lock = threading.Lock()
    current: list[Any] = []  # [call, monotonic time of its last frame]

    def watchdog() -> None:
        while not stop.wait(0.1):
            with lock:
                if current and time.monotonic() - current[1] > STALL_AFTER:
                    log.stalls += 1
                    current[0].cancel()
                    current.clear()
        with lock:
            if current:
                current[0].cancel()

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        with grpc.insecure_channel(target) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            while True:
                request = events_pb2.SubscribeRequest(
                    topics=topics,
                    start=EARLIEST,
                    cursors=[events_pb2.TopicCursor(topic=t, after_id=i) for t, i in sorted(cursors.items())],
                    heartbeat_interval=ms(HEARTBEAT_MS),
                )
                with lock:
                    if stop.is_set():
                        return
                    call = stub.Subscribe(request)
                    current[:] = [call, time.monotonic()]
                try:
                    for frame in call:
                        with lock:
                            if current and current[0] is call:
                                current[1] = time.monotonic()
                        kind = frame.WhichOneof("frame")
                        assert kind != "gap", frame
                        if kind == "events":
                            for event in frame.events.events:
                                log.add(event.topic, event.id, event.data)
                                cursors[event.topic] = event.id
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.CANCELLED:
                        if stop.is_set():
                            return
                        continue  # the watchdog ended a silent stream
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                    log.interruptions += 1
                    info = error_info(error)
                    if info.reason == "EVENTS_STREAM_INTERRUPTED":
                        sent = json.loads(info.metadata["cursors"])
                        # The error's cursors are exactly what reached this reader.
                        assert {t: i for t, i in sent.items() if i != "0-0"} == cursors, (sent, cursors)
                        if from_error:
                            cursors = {t: i for t, i in sent.items() if i != "0-0"}
                    time.sleep(RETRY_PAUSE)
                finally:
                    call.cancel()
    except BaseException as exc:
        log.error = exc
        with log.changed:
            log.changed.notify_all()


def _crash_and_restart(backing: Any) -> None:
    """SIGKILL (no shutdown save: only what the AOF fsynced survives), then start on the same port
    and data directory."""
    proc = backing.proc
    proc.kill()
    proc.wait(10)
    backing.proc = None
    backing.start()


def test_subscribers_resume_after_redis_is_killed_and_restarted_with_aof(redis_factory, start_coord):
    backing = redis_factory(extra=("--appendonly", "yes", "--appendfsync", "always"))
    server = start_coord(backing.url)
    acked: dict[str, list[str]] = {t: [] for t in TOPICS}
    progress = threading.Condition()
    stop = threading.Event()
    logs = [Log("by name"), Log("by pattern, cursors from errors")]
    target = server.target
    readers = [
        threading.Thread(target=_raw_reader, args=(target, TOPICS, logs[0], stop, False), daemon=True),
        threading.Thread(target=_raw_reader, args=(target, ["aof.*"], logs[1], stop, True), daemon=True),
    ]
    for reader in readers:
        reader.start()
    publisher = threading.Thread(target=_publish_all, args=(server.target, acked, progress), daemon=True)
    publisher.start()
    with progress:
        assert progress.wait_for(lambda: sum(map(len, acked.values())) >= 150, 30)
    for log in logs:
        log.wait_for(100, 30)  # every reader is mid-stream
    _crash_and_restart(backing)
    publisher.join(90)
    assert not publisher.is_alive()
    assert sum(map(len, acked.values())) == TOTAL
    hint = f"(last acknowledged: { {t: ids[-1] for t, ids in acked.items()} })"
    try:
        for log in logs:
            log.wait_for(TOTAL, 30, hint)
    finally:
        stop.set()
        for reader in readers:
            reader.join(30)
    assert all(not r.is_alive() for r in readers)
    assert logs[0].interruptions >= 1 and logs[1].interruptions >= 1, "the restart did not break the streams"
    # A resubscribe made while Redis restarts has been seen, rarely, to leave a call that never gets a
    # frame or a status; the watchdog recovers it as the docs say a client must. Reported, not hidden:
    print(f"\nstreams ended by the heartbeat watchdog: {[log.stalls for log in logs]}")
    for n, log in enumerate(logs):
        assert log.error is None, log.error
        for topic in TOPICS:
            ids = [i for t, i, _ in log.events if t == topic]
            keys = [id_pair(i) for i in ids]
            assert all(a < b for a, b in itertools.pairwise(keys)), f"reader {n}: {topic} went back"
            assert ids == acked[topic], f"reader {n}: {topic} differs from what Publish acknowledged"
        assert sorted(number for _, _, number in log.events) == list(range(TOTAL))
    with backing.client() as r:  # the restart really came from the AOF
        assert r.info("persistence")["aof_enabled"] == 1
