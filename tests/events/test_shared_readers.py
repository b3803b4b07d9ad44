"""The live topic readers are shared: many topics per XREAD BLOCK on a bounded set of connections
(events/readers.py), on a single node and on a Cluster (one XREAD per hash slot there)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
import redis
from redis.crc import key_slot

from coord.events.v1 import events_pb2, events_pb2_grpc
from coord_server.events.readers import Reader, StreamReaders, readers_of
from coord_server.redis import acl

from ..conftest import CoordThread, CoordUnderTest, RedisClusterProcess, RedisProcess, wait_for
from .helpers import ms, publish, subscribe

TOPICS = 300
NO_HEARTBEAT = ms(600_000)  # the longest: no Progress frame while a test waits for events


def _nodes(backing: RedisProcess | RedisClusterProcess) -> list[RedisProcess]:
    return list(backing.nodes) if isinstance(backing, RedisClusterProcess) else [backing]


def _clients(backing: RedisProcess | RedisClusterProcess) -> tuple[int, int]:
    """Connections (INFO clients connected_clients) and connections blocked in a command
    (blocked_clients), summed over the nodes."""
    connected = blocked = 0
    for node in _nodes(backing):
        with node.client() as r:
            info = r.info("clients")
            connected += int(info["connected_clients"])
            blocked += int(info["blocked_clients"])
    return connected, blocked


def _others(backing: RedisProcess | RedisClusterProcess) -> int:
    """Connections besides the readers that opening and publishing may add: per node, the server's
    pipelined connection and one pooled connection, each opened on its first use (a Cluster's nodes
    each get theirs), and one more."""
    return 2 * len(_nodes(backing)) + 1


def _readers(server: CoordThread) -> StreamReaders:
    assert server.app is not None
    readers = readers_of(server.app.redis)
    assert readers is not None
    return readers


def _all_readers(readers: StreamReaders) -> list[Reader]:
    return [r for node in readers.readers.values() for r in node]


async def _open(target: str, topics: list[str]) -> tuple[grpc.aio.Channel, list[Any]]:
    """One Subscribe stream per topic, opened one after another (so Redis connections are the
    readers', not a burst of concurrent opening calls), each past its Subscribed frame."""
    channel = grpc.aio.insecure_channel(target)
    stub = events_pb2_grpc.EventsServiceStub(channel)
    calls = []
    for topic in topics:
        call = stub.Subscribe(
            events_pb2.SubscribeRequest(
                topics=[topic], start=events_pb2.START_POSITION_LATEST, heartbeat_interval=NO_HEARTBEAT
            )
        )
        first = await call.read()
        assert first.WhichOneof("frame") == "subscribed", first
        calls.append(call)
    return channel, calls


def _many_topics(
    server: CoordThread, backing: RedisProcess | RedisClusterProcess, bound: int
) -> dict[str, int]:
    """Subscribe to TOPICS topics, one stream each; publish one event to each and read it back.
    Returns what was measured."""
    topics = [f"many.{i}" for i in range(TOPICS)]
    nodes = len(_nodes(backing))

    async def main() -> dict[str, int]:
        with grpc.insecure_channel(server.target) as warm:  # scripts cached, pools warm
            events_pb2_grpc.EventsServiceStub(warm).Publish(
                events_pb2.PublishRequest(topic="warm", data=b"x")
            )
        connected_before, blocked_before = _clients(backing)
        channel, calls = await _open(server.target, topics)
        try:
            readers = _readers(server)
            reading = readers.connections()
            wait_for(lambda: _clients(backing)[1] - blocked_before >= 1, "a reader blocked in XREAD")
            connected, blocked = _clients(backing)
            stub = events_pb2_grpc.EventsServiceStub(channel)
            reply = await stub.BatchPublish(
                events_pb2.BatchPublishRequest(
                    requests=[events_pb2.PublishRequest(topic=t, data=t.encode()) for t in topics]
                )
            )
            assert len(reply.responses) == TOPICS
            frames = await asyncio.wait_for(asyncio.gather(*(c.read() for c in calls)), 60)
            for topic, frame in zip(topics, frames, strict=True):
                [event] = frame.events.events
                assert (event.topic, event.data) == (topic, topic.encode()), frame
            streams = sum(len(r.streams) for r in _all_readers(readers))
            return {
                "connections added": connected - connected_before,
                "blocked added": blocked - blocked_before,
                "readers": reading,
                "streams read": streams,
                "bound": bound * nodes,
            }
        finally:
            for call in calls:
                call.cancel()
            await channel.close()

    measured = asyncio.run(main())
    print(f"\n{TOPICS} topics on {nodes} node(s): {measured}")
    return measured


def test_three_hundred_topics_share_a_bounded_number_of_connections(coord: CoordUnderTest) -> None:
    """With the default bound (COORD_EVENTS_READERS per node), 300 topics read live add at most the
    bound's connections to Redis, not 300, and each topic still delivers its event."""
    bound = coord.settings.events_readers
    measured = _many_topics(coord.server, coord.backing, bound)
    assert measured["streams read"] == TOPICS
    assert measured["readers"] <= measured["bound"]
    assert measured["connections added"] <= measured["bound"] + _others(coord.backing), measured
    assert measured["blocked added"] <= measured["readers"], measured
    if coord.kind == "single":
        # 128 topics per XREAD: three connections for 300 topics.
        assert measured["readers"] == -(-TOPICS // coord.settings.events_read_streams)


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_past_the_bound_topics_share_the_existing_connections(
    kind: str,
    request: pytest.FixtureRequest,
    start_coord: Callable[..., CoordThread],
) -> None:
    """A bound of 2 readers per node: 300 topics fit in them (more keys per XREAD, or on a Cluster
    one XREAD per slot from a reader that polls its slots), and each topic still delivers."""
    backing: RedisProcess | RedisClusterProcess = request.getfixturevalue(f"redis_{kind}")
    if isinstance(backing, RedisClusterProcess):
        backing.flush()
    else:
        with backing.client() as r:
            r.flushall()
    server = start_coord(
        backing.url, redis_cluster=kind == "cluster", events_readers=2, events_read_streams=50
    )
    measured = _many_topics(server, backing, 2)
    assert measured["streams read"] == TOPICS
    assert measured["readers"] <= measured["bound"], measured
    assert measured["connections added"] <= measured["bound"] + _others(backing), measured


def _same_slot_topic(topic: str, prefix: str) -> str:
    """A topic name whose stream key is in the same Cluster slot as ``topic``'s (tenant default)."""
    slot = key_slot(f"coord:default:events:{{{topic}}}".encode())
    for n in range(1_000_000):
        name = f"{prefix}.{n}"
        if key_slot(f"coord:default:events:{{{name}}}".encode()) == slot:
            return name
    raise AssertionError("no topic name found in that slot")


def _blocked_in_redis(backing: RedisProcess | RedisClusterProcess, reader: Reader) -> bool:
    """Whether the reader's connection is blocked in Redis now (CLIENT LIST flags ``b``)."""
    client_id = reader.connection.client_id
    if client_id is None:
        return False
    for node in _nodes(backing):
        if reader.node and not reader.node.endswith(f":{node.port}"):
            continue
        with node.client() as r:
            for client in r.client_list():
                if int(client["id"]) == client_id and "b" in client["flags"]:
                    return True
    return False


def _wait_blocked(backing: RedisProcess | RedisClusterProcess, reader: Reader) -> None:
    wait_for(lambda: _blocked_in_redis(backing, reader), "the reader's XREAD BLOCK waiting in Redis")


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_a_topic_joins_a_blocked_reader_without_waiting_for_its_block_time(
    kind: str,
    request: pytest.FixtureRequest,
    start_coord: Callable[..., CoordThread],
) -> None:
    """A reader blocked in a 30 s XREAD is woken (CLIENT UNBLOCK) when a topic joins it: the new
    topic's event arrives long before the block would have ended, through the same connection. Then
    a stream that leaves is taken out of the reader's keys, and the last one closes the reader."""
    backing: RedisProcess | RedisClusterProcess = request.getfixturevalue(f"redis_{kind}")
    if isinstance(backing, RedisClusterProcess):
        backing.flush()
    else:
        with backing.client() as r:
            r.flushall()
    server = start_coord(backing.url, redis_cluster=kind == "cluster")
    readers = _readers(server)
    readers.block_ms = 30_000  # read by each new XREAD: the next one blocks 30 s
    first, late = "wake.a", _same_slot_topic("wake.a", "wake.b")
    with grpc.insecure_channel(server.target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        one = subscribe(stub, first, heartbeat_interval=NO_HEARTBEAT)
        assert one.next_of("subscribed").starts[0].topic == first
        [reader] = _all_readers(readers)
        # The first XREAD may have been sent before the 30 s took effect: let one pass.
        publish(stub, first, b"0")
        assert [e.data for e in one.events(1)] == [b"0"]
        _wait_blocked(backing, reader)
        reads, wakes = reader.reads, reader.wakes

        two = subscribe(stub, late, heartbeat_interval=NO_HEARTBEAT)
        assert two.next_of("subscribed").starts[0].topic == late
        assert _all_readers(readers) == [reader], "the topic joined the blocked reader"
        assert {k.rsplit("{", 1)[1] for k in reader.stream_keys()} == {f"{first}}}", f"{late}}}"}
        publish(stub, late, b"1")
        # Well under the 30 s block: only a woken reader can deliver it in time.
        assert [e.data for e in two.events(1, timeout=15)] == [b"1"]
        assert reader.wakes >= wakes + 1
        assert reader.reads >= reads + 1

        two.cancel()
        wait_for(lambda: len(reader.streams) == 1, "the left topic taken out of the reader")
        assert [k.rsplit("{", 1)[1] for k in reader.stream_keys()] == [f"{first}}}"]
        publish(stub, first, b"2")
        assert [e.data for e in one.events(1, timeout=40)] == [b"2"]

        one.cancel()
        wait_for(lambda: readers.connections() == 0, "the empty reader closing", timeout=15)
        assert reader.task.done() and not reader.streams


def test_a_reader_connection_killed_ends_its_streams_with_their_cursors(coord_single: CoordUnderTest) -> None:
    """Every topic of a reader whose connection dies is interrupted with its cursors (the clients
    resume without loss); a new subscription gets a new reader."""
    readers = _readers(coord_single.server)
    with grpc.insecure_channel(coord_single.target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        streams = [subscribe(stub, f"kill.{i}", heartbeat_interval=NO_HEARTBEAT) for i in range(3)]
        for s in streams:
            s.next_of("subscribed")
        [reader] = _all_readers(readers)
        wait_for(lambda: reader.connection.client_id is not None, "the reader connected")
        client_id = reader.connection.client_id
        with coord_single.redis() as r:
            assert isinstance(r, redis.Redis)
            r.client_kill_filter(_id=client_id)
        for s in streams:
            error = s.wait_error()
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        again = subscribe(stub, "kill.0", heartbeat_interval=NO_HEARTBEAT)
        again.next_of("subscribed")
        publish(stub, "kill.0", b"after")
        assert [e.data for e in again.events(1)] == [b"after"]
        assert _all_readers(readers) != [reader]
        again.cancel()


def test_without_client_commands_in_the_acl_a_topic_joins_when_the_read_ends(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    """An ACL user set up before the readers used CLIENT ID / CLIENT UNBLOCK: the readers still
    read every topic; a topic joining a blocked reader waits for its read to end (no wake)."""
    rules = [rule for rule in acl.rules() if not rule.startswith("+client|")]
    with redis_single.client() as r:
        r.flushall()
        r.execute_command("ACL", "SETUSER", "old-coord", "reset", "on", ">pw-1", *rules)
    try:
        server = start_coord(redis_single.url.replace("://", "://old-coord:pw-1@", 1))
        readers = _readers(server)
        with grpc.insecure_channel(server.target) as channel:
            stub = events_pb2_grpc.EventsServiceStub(channel)
            one = subscribe(stub, "acl.a", heartbeat_interval=NO_HEARTBEAT)
            one.next_of("subscribed")
            [reader] = _all_readers(readers)
            two = subscribe(stub, "acl.b", heartbeat_interval=NO_HEARTBEAT)
            two.next_of("subscribed")
            assert _all_readers(readers) == [reader]
            publish(stub, "acl.b", b"late")
            assert [e.data for e in two.events(1, timeout=30)] == [b"late"]
            assert reader.connection.client_id is None and reader.wakes == 0
            one.cancel()
            two.cancel()
    finally:
        with redis_single.client() as r:
            r.execute_command("ACL", "DELUSER", "old-coord")
