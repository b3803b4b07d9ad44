"""Subscribers that come and go while a publisher keeps writing: each one's log, de-duplicated, is the
published log, and its ids only ever increase (so in fact nothing was delivered twice)."""

from __future__ import annotations

import itertools
import random
import threading
import time

import grpc

from coord.events.v1 import events_pb2, events_pb2_grpc

from .helpers import EARLIEST, id_pair, ms, subscribe


class Publisher:
    """Publishes numbered events (data = the number) round-robin over ``topics`` on its own channel,
    in small batches of random size; ``log[topic]`` is the acknowledged ids in order."""

    def __init__(self, target: str, topics: list[str], total: int, seed: int) -> None:
        self.target = target
        self.topics = topics
        self.total = total
        self.log: dict[str, list[str]] = {t: [] for t in topics}
        self.numbers: dict[str, list[int]] = {t: [] for t in topics}
        self.acked = 0
        self.progress = threading.Condition()
        self.error: BaseException | None = None
        self._random = random.Random(seed)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Publisher:
        self.thread.start()
        return self

    def wait_acked(self, count: int, timeout: float = 30.0) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.acked >= count or self.error, timeout)
        assert self.error is None, self.error

    def join(self, timeout: float = 60.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the publisher did not finish"
        assert self.error is None, self.error

    def _run(self) -> None:
        try:
            with grpc.insecure_channel(self.target) as channel:
                stub = events_pb2_grpc.EventsServiceStub(channel)
                n = 0
                while n < self.total:
                    size = min(self._random.randint(1, 6), self.total - n)
                    numbers = list(range(n, n + size))
                    topics = [self.topics[i % len(self.topics)] for i in numbers]
                    reply = stub.BatchPublish(
                        events_pb2.BatchPublishRequest(
                            requests=[
                                events_pb2.PublishRequest(topic=t, data=b"%d" % i)
                                for t, i in zip(topics, numbers, strict=True)
                            ]
                        ),
                        timeout=10,
                    )
                    with self.progress:
                        for t, i, r in zip(topics, numbers, reply.responses, strict=True):
                            self.log[t].append(r.id)
                            self.numbers[t].append(i)
                        self.acked += size
                        self.progress.notify_all()
                    n += size
        except BaseException as exc:  # reported by join / wait_acked
            self.error = exc
            with self.progress:
                self.progress.notify_all()


def _strictly_increasing(ids: list[str]) -> bool:
    keys = [id_pair(i) for i in ids]
    return all(a < b for a, b in itertools.pairwise(keys))


def test_pattern_subscription_opened_while_its_topics_are_published_gets_each_event_once(stub, coord):
    """A pattern stream that opens while matching topics are being published to attaches each topic
    once: a publish landing while the stream lists the existing topics must not start a second read.
    The stream opens with one Subscribed frame naming every topic that existed before it opened."""
    topics = ["race.a", "race.b"]
    publisher = Publisher(coord.target, topics, 3000, seed=1).start()
    publisher.wait_acked(20)  # both topics exist from here on
    streams: list[tuple[list[object], dict[str, list[str]]]] = []
    while publisher.thread.is_alive() and len(streams) < 40:
        stream = subscribe(stub, "race.*", start=EARLIEST)
        frames = []
        got: dict[str, list[str]] = {t: [] for t in topics}
        while sum(map(len, got.values())) < 60:
            frame = stream.next()
            frames.append(frame)
            if frame.WhichOneof("frame") == "events":
                for event in frame.events.events:
                    got[event.topic].append(event.id)
        stream.cancel()
        streams.append((frames, got))
    publisher.join()
    assert len(streams) >= 5
    for n, (frames, got) in enumerate(streams):
        opening = frames[0]
        assert opening.WhichOneof("frame") == "subscribed", f"stream {n} opened with {opening}"
        assert sorted(c.topic for c in opening.subscribed.starts) == topics
        assert [f for f in frames[1:] if f.WhichOneof("frame") == "subscribed"] == [], f"stream {n}"
        for topic, ids in got.items():
            assert _strictly_increasing(ids), f"stream {n}: {topic} delivered out of order or twice"
            assert ids == publisher.log[topic][: len(ids)], f"stream {n}: {topic} is not the log"


def _resubscribing_reader(
    target: str,
    topics: list[str],
    publisher: Publisher,
    seed: int,
    raw: list[events_pb2.Event],
    resumes: list[int],
    errors: list[BaseException],
) -> None:
    """Subscribes, reads a random number of frames, disconnects (cancel or deadline), and resubscribes
    from its cursors (the last id it received per topic, or a newer Progress cursor), until it has seen
    every published event."""
    rand = random.Random(seed)
    cursors: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    try:
        with grpc.insecure_channel(target) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            end = time.monotonic() + 90
            while True:
                done = not publisher.thread.is_alive() and len(seen) == publisher.total
                if done:
                    return
                assert time.monotonic() < end, f"reader {seed}: only {len(seen)} of {publisher.total}"
                request = events_pb2.SubscribeRequest(
                    topics=topics,
                    start=EARLIEST,  # for topics without a cursor yet
                    cursors=[events_pb2.TopicCursor(topic=t, after_id=i) for t, i in sorted(cursors.items())],
                    heartbeat_interval=ms(100),
                )
                deadline = rand.choice([None, None, rand.uniform(0.05, 0.4)])
                call = stub.Subscribe(request, timeout=deadline if deadline else 30)
                frames = rand.randint(1, 8)
                try:
                    for frame in call:
                        kind = frame.WhichOneof("frame")
                        assert kind != "gap", frame
                        if kind == "events":
                            for event in frame.events.events:
                                raw.append(event)
                                seen.add((event.topic, event.id))
                                cursors[event.topic] = event.id
                        elif kind == "progress":
                            for c in frame.progress.cursors:
                                if c.after_id == "0-0":
                                    continue  # a topic not read yet: keep starting it at EARLIEST
                                if c.topic in cursors:
                                    # A Progress cursor never goes back: everything up to it was sent.
                                    assert id_pair(c.after_id) >= id_pair(cursors[c.topic]), (c, cursors)
                                cursors[c.topic] = c.after_id
                        frames -= 1
                        if frames <= 0 and deadline is None:
                            break
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error
                finally:
                    call.cancel()
                resumes[0] += 1
    except BaseException as exc:
        errors.append(exc)


def test_subscribers_that_keep_disconnecting_and_resuming_receive_the_published_log(coord):
    """A publisher writes numbered events over two topics while four subscribers (two by name, two by
    pattern) repeatedly cancel or time out and resume from their cursors."""
    topics = ["churn.a", "churn.b"]
    publisher = Publisher(coord.target, topics, 1500, seed=7)
    readers = []
    logs: list[list[events_pb2.Event]] = []
    resumes: list[list[int]] = []
    errors: list[BaseException] = []
    for n, subscription in enumerate([topics, ["churn.*"], topics, ["churn.>"]]):
        logs.append([])
        resumes.append([0])
        readers.append(
            threading.Thread(
                target=_resubscribing_reader,
                args=(coord.target, subscription, publisher, n, logs[-1], resumes[-1], errors),
                daemon=True,
            )
        )
    for reader in readers:
        reader.start()
    publisher.start()
    publisher.join()
    for reader in readers:
        reader.join(120)
        assert not reader.is_alive()
    assert not errors, errors[0]
    for n, log in enumerate(logs):
        # Usually dozens; the exact number depends on scheduling, the order checks below do not.
        assert resumes[n][0] >= 3, f"reader {n} resumed only {resumes[n][0]} times"
        for topic in topics:
            ids = [e.id for e in log if e.topic == topic]
            assert _strictly_increasing(ids), f"reader {n}: {topic} ids went back (a duplicate or reorder)"
            unique = list(dict.fromkeys(ids))
            assert unique == publisher.log[topic], f"reader {n}: {topic} differs from the published log"
            numbers = [int(e.data) for e in log if e.topic == topic]
            assert numbers == publisher.numbers[topic]
