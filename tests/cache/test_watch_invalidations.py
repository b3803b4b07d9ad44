"""WatchInvalidations: ready first, then one invalidation per change to a watched key (from any client,
through any Coord server on the same Redis), numbered without holes; a flush whenever the server's
Redis subscription was lost; bad requests refused naming the field; refused when invalidations are off.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord_server.cache import invalidations
from coord_server.cache.invalidations import (
    FLUSH_LOST,
    FLUSH_RESUBSCRIBED,
    FLUSH_TOO_SLOW,
    FLUSH_UNREADABLE,
    InvalidationHub,
    Kind,
    Notice,
    Pushed,
    Watcher,
    WatchSpec,
    hubs_of,
)
from coord_server.cache.keys import CacheKeys

from ..conftest import CoordThread, CoordUnderTest, RedisProcess, wait_for

TTL = duration_pb2.Duration(seconds=60)
WAIT = 20.0  # seconds a test waits for a message that must come (a loaded machine is slow, not wrong)


class Watch:
    """One WatchInvalidations stream read by a thread into a queue (so a test can wait with a bound)."""

    def __init__(self, stub: cache_pb2_grpc.CacheServiceStub, **request: Any) -> None:
        self.call = stub.WatchInvalidations(pb.WatchInvalidationsRequest(**request))
        self.messages: queue.Queue[pb.WatchInvalidationsResponse | grpc.RpcError | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.messages.put(message)
            self.messages.put(None)
        except grpc.RpcError as error:
            self.messages.put(error)

    def next(self) -> pb.WatchInvalidationsResponse:
        item = self.messages.get(timeout=WAIT)
        if isinstance(item, grpc.RpcError):
            raise item
        assert item is not None, "the stream ended"
        return item

    def error(self) -> grpc.RpcError:
        while True:
            item = self.messages.get(timeout=WAIT)
            if isinstance(item, grpc.RpcError):
                return item
            assert item is not None, "the stream ended without an error"

    def ready(self) -> None:
        first = self.next()
        assert (first.WhichOneof("kind"), first.sequence) == ("ready", 1)

    def invalidation(self) -> tuple[str, int]:
        message = self.next()
        assert message.WhichOneof("kind") == "invalidation", message
        return message.invalidation.key, message.invalidation.version

    def cancel(self) -> None:
        self.call.cancel()


@pytest.fixture
def channel(coord: CoordUnderTest) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(coord.target) as channel:
        yield channel


@pytest.fixture
def watches() -> Iterator[list[Watch]]:
    opened: list[Watch] = []
    yield opened
    for watch in opened:
        watch.cancel()


def _hub(server: CoordThread) -> InvalidationHub:
    assert server.app is not None
    [hub] = hubs_of(server.app.redis)
    return hub


def test_ready_comes_first_then_every_kind_of_write(
    coord: CoordUnderTest, channel: grpc.Channel, watches: list[Watch]
) -> None:
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    watch = Watch(stub, prefixes=["inv:"])
    watches.append(watch)
    watch.ready()
    with grpc.insecure_channel(coord.target) as other:  # another client
        writer = cache_pb2_grpc.CacheServiceStub(other)
        writer.Set(pb.SetRequest(key="elsewhere", value=b"x", ttl=TTL))  # not watched: nothing sent
        stored = writer.Set(pb.SetRequest(key="inv:a", value=b"1", ttl=TTL))
        counted = writer.Increment(pb.IncrementRequest(key="inv:n", delta=5))
        touched = writer.Touch(pb.TouchRequest(key="inv:a", ttl=TTL))
        assert touched.found
        writer.Delete(pb.DeleteRequest(keys=["inv:a"]))
        writer.Set(pb.SetRequest(key="inv:b", value=b"2", ttl=TTL, if_absent=pb.IfAbsent()))
        writer.Set(pb.SetRequest(key="inv:b", value=b"3", ttl=TTL, if_absent=pb.IfAbsent()))  # not stored
        writer.Set(pb.SetRequest(key="inv:c", value=b"4", ttl=TTL))
    seen = [watch.next() for _ in range(6)]
    assert [m.sequence for m in seen] == [2, 3, 4, 5, 6, 7]
    by_key: dict[str, list[int]] = {}
    for message in seen:
        by_key.setdefault(message.invalidation.key, []).append(message.invalidation.version)
    # In order per key (on a Cluster, keys of different nodes may arrive in another order).
    assert by_key == {
        "inv:a": [stored.version, stored.version, 0],  # Set, Touch (same version, new expiry), Delete
        "inv:n": [counted.version],
        "inv:b": [by_key["inv:b"][0]],  # the if_absent Set that was not stored sent nothing
        "inv:c": [by_key["inv:c"][0]],
    }
    assert by_key["inv:b"][0] > 0 and by_key["inv:c"][0] > 0


def test_values_come_with_small_untagged_sets_to_the_streams_that_ask(
    coord: CoordUnderTest, channel: grpc.Channel, watches: list[Watch]
) -> None:
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    with_values = Watch(stub, prefixes=["val"], values=True)
    plain = Watch(stub, prefixes=["val"])
    watches += [with_values, plain]
    with_values.ready()
    plain.ready()
    cost = duration_pb2.Duration(nanos=250_000_000)
    with grpc.insecure_channel(coord.target) as other:  # another client
        writer = cache_pb2_grpc.CacheServiceStub(other)
        small = writer.Set(pb.SetRequest(key="val-a", value=b"one", ttl=TTL, compute_time=cost))
        writer.Set(pb.SetRequest(key="val-t", value=b"tagged", ttl=TTL, tags=["t"]))
        writer.Set(pb.SetRequest(key="val:ns", value=b"has a namespace", ttl=TTL))  # delimiter ':'
        writer.Set(pb.SetRequest(key="val-big", value=b"x" * 1025, ttl=TTL))  # over the 1 KiB default
        writer.Set(pb.SetRequest(key="val-edge", value=b"y" * 1024, ttl=TTL))  # at it
        writer.Increment(pb.IncrementRequest(key="val-n", delta=2))
        writer.Touch(pb.TouchRequest(key="val-a", ttl=TTL))
        writer.Delete(pb.DeleteRequest(keys=["val-a"]))
    carried = {}
    for _ in range(8):
        message = with_values.next().invalidation
        if message.HasField("entry"):
            carried[message.key] = message.entry
    assert sorted(carried) == ["val-a", "val-edge"]
    entry = carried["val-a"]
    assert (entry.key, entry.found, entry.value, entry.version) == ("val-a", True, b"one", small.version)
    assert entry.expire_time == small.expire_time
    assert entry.compute_time == cost
    assert carried["val-edge"].value == b"y" * 1024
    for _ in range(8):  # the stream that did not ask gets the same invalidations, without entries
        assert not plain.next().invalidation.HasField("entry")


def test_no_values_are_sent_when_the_setting_is_zero(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread], watches: list[Watch]
) -> None:
    server = start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", cache_push_value_max=0)
    with grpc.insecure_channel(server.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        watch = Watch(stub, keys=["zero"], values=True)
        watches.append(watch)
        watch.ready()
        stub.Set(pb.SetRequest(key="zero", value=b"v", ttl=TTL))
        message = watch.next().invalidation
        assert message.key == "zero" and message.version > 0 and not message.HasField("entry")


def test_prefixes_and_keys_filter_each_stream(channel: grpc.Channel, watches: list[Watch]) -> None:
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    some = Watch(stub, prefixes=["a:"], keys=["exact"])
    every = Watch(stub, prefixes=[""])
    watches.extend([some, every])
    some.ready()
    every.ready()
    for key in ("a:1", "b:1", "exact", "exactly", "a", "a:2"):
        stub.Set(pb.SetRequest(key=key, value=b"v", ttl=TTL))
    assert sorted(some.invalidation()[0] for _ in range(3)) == ["a:1", "a:2", "exact"]
    assert sorted(every.invalidation()[0] for _ in range(6)) == ["a", "a:1", "a:2", "b:1", "exact", "exactly"]


def test_keys_with_braces_and_percent_signs_come_back_as_written(
    channel: grpc.Channel, watches: list[Watch]
) -> None:
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    watch = Watch(stub, prefixes=["{"])
    watches.append(watch)
    watch.ready()
    key = "{user}:%7B:ü:%"
    stub.Set(pb.SetRequest(key=key, value=b"v", ttl=TTL))
    assert watch.invalidation()[0] == key


def test_writes_through_another_coord_server_are_seen(
    coord: CoordUnderTest,
    channel: grpc.Channel,
    watches: list[Watch],
    start_coord: Callable[..., CoordThread],
) -> None:
    second = start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster")
    watch = Watch(cache_pb2_grpc.CacheServiceStub(channel), keys=["shared"])
    watches.append(watch)
    watch.ready()
    with grpc.insecure_channel(second.target) as other:
        stored = cache_pb2_grpc.CacheServiceStub(other).Set(pb.SetRequest(key="shared", value=b"v", ttl=TTL))
    assert watch.invalidation() == ("shared", stored.version)


def _kill_pubsub_connections(coord: CoordUnderTest) -> int:
    """CLIENT KILL TYPE pubsub on every node: the servers' subscriptions (every one) are cut."""
    nodes = coord.backing.nodes if hasattr(coord.backing, "nodes") else [coord.backing]
    killed = 0
    for node in nodes:
        with node.client() as r:
            killed += int(r.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
    return killed


def test_a_lost_subscription_flushes_every_stream_and_numbers_stay_whole(
    coord: CoordUnderTest, channel: grpc.Channel, watches: list[Watch]
) -> None:
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    watch = Watch(stub, prefixes=["k:"])
    watches.append(watch)
    watch.ready()
    hub = _hub(coord.server)
    before = hub.subscriptions
    assert _kill_pubsub_connections(coord) >= 1
    lost, back = watch.next(), watch.next()
    assert (lost.sequence, lost.WhichOneof("kind"), lost.flush.reason) == (2, "flush", FLUSH_LOST)
    assert (back.sequence, back.WhichOneof("kind"), back.flush.reason) == (3, "flush", FLUSH_RESUBSCRIBED)
    assert hub.subscriptions == before + 1
    stored = stub.Set(pb.SetRequest(key="k:after", value=b"v", ttl=TTL))
    after = watch.next()
    assert (after.sequence, after.invalidation.key, after.invalidation.version) == (
        4,
        "k:after",
        stored.version,
    )


def test_a_stream_joining_a_running_subscription_is_ready_at_once(
    coord: CoordUnderTest, channel: grpc.Channel, watches: list[Watch]
) -> None:
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    first = Watch(stub, prefixes=["j:"])
    watches.append(first)
    first.ready()
    hub = _hub(coord.server)
    subscriptions = hub.subscriptions
    second = Watch(stub, keys=["j:1"])
    watches.append(second)
    second.ready()
    stub.Set(pb.SetRequest(key="j:1", value=b"v", ttl=TTL))
    assert first.invalidation()[0] == second.invalidation()[0] == "j:1"
    assert hub.subscriptions == subscriptions  # one subscription for both


def test_a_cancelled_stream_leaves_and_the_subscription_stops_after_the_linger(
    coord_single: CoordUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invalidations, "LINGER", 0.2)
    with grpc.insecure_channel(coord_single.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        watch = Watch(stub, prefixes=[""])
        watch.ready()
        hub = _hub(coord_single.server)
        assert len(hub) == 1 and hub.running
        watch.cancel()
        wait_for(lambda: len(hub) == 0, "the cancelled stream leaving the hub")
        wait_for(lambda: not hub.running, "the subscription stopping after the linger")
        again = Watch(stub, prefixes=[""])
        again.ready()  # a new subscription, confirmed before ready
        assert hub.running
        stub.Set(pb.SetRequest(key="again", value=b"v", ttl=TTL))
        assert again.invalidation()[0] == "again"
        again.cancel()


def test_a_silent_subscription_is_probed_and_a_live_one_passes(
    coord_single: CoordUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invalidations, "PROBE_INTERVAL", 0.05)
    with grpc.insecure_channel(coord_single.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        watch = Watch(stub, prefixes=["p:"])
        watch.ready()
        hub = _hub(coord_single.server)
        probes, subscriptions = hub.probes, hub.subscriptions
        wait_for(lambda: hub.probes >= probes + 3, "a few probes of the idle subscription")
        stored = stub.Set(pb.SetRequest(key="p:1", value=b"v", ttl=TTL))
        after = watch.next()  # no flush: every probe came back
        assert (after.sequence, after.invalidation.key, after.invalidation.version) == (
            2,
            "p:1",
            stored.version,
        )
        assert hub.subscriptions == subscriptions
        watch.cancel()


def test_server_shutdown_ends_the_stream_at_once(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(redis_single.url, shutdown_grace=600.0)
    with grpc.insecure_channel(server.target) as channel:
        watch = Watch(cache_pb2_grpc.CacheServiceStub(channel), prefixes=[""])
        watch.ready()
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        error: Any = watch.error()
        stopping.join(60)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert _reason(error) == "SERVER_SHUTTING_DOWN"


def _reason(error: Any) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Unpack(info):
            return info.reason
    raise AssertionError("no ErrorInfo")


def _violations(error: Any) -> list[str]:
    status = rpc_status.from_call(error)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.Unpack(bad):
            return [v.field for v in bad.field_violations]
    return []


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        ({}, "prefixes", "INVALID_FIELD"),
        ({"keys": [""]}, "keys[0]", "INVALID_FIELD"),
        ({"prefixes": ["ok", "bad\n"]}, "prefixes[1]", "INVALID_FIELD"),
        ({"prefixes": ["p" * 1025]}, "prefixes[0]", "KEY_TOO_LONG"),
        ({"keys": ["k" * 1025]}, "keys[0]", "KEY_TOO_LONG"),
        ({"prefixes": [f"p{i}" for i in range(1001)]}, "prefixes", "BATCH_TOO_LARGE"),
        ({"keys": [f"k{i}" for i in range(1001)]}, "keys", "BATCH_TOO_LARGE"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    coord_single: CoordUnderTest, request_: dict[str, Any], field: str, reason: str
) -> None:
    with grpc.insecure_channel(coord_single.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            next(stub.WatchInvalidations(pb.WatchInvalidationsRequest(**request_), timeout=WAIT))
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(error) == reason
    assert _violations(error) == [field]


def test_off_setting_refuses_with_failed_precondition(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(redis_single.url, cache_invalidations=False)
    with grpc.insecure_channel(server.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            next(stub.WatchInvalidations(pb.WatchInvalidationsRequest(prefixes=[""]), timeout=WAIT))
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "COORD_CACHE_INVALIDATIONS" in error.details()
    assert _reason(error) == invalidations.OFF_REASON
    assert server.app is not None and not hubs_of(server.app.redis)


# -- one stream's buffer, without Redis: what a stream that falls behind is sent ---------------------


def test_a_stream_that_falls_behind_gets_a_flush_instead_of_its_buffer() -> None:
    async def scenario() -> list[tuple[int, Kind, str, int, str]]:
        watcher = Watcher(WatchSpec(("",), frozenset()), buffer=3)
        watcher.invalidate("early", 1)  # before ready: nothing is queued (the client caches nothing yet)
        watcher.ready()
        for i in range(3):
            watcher.invalidate(f"k{i}", i + 1)
        watcher.invalidate("k3", 4)  # one too many: the buffer is dropped, a flush queued
        watcher.invalidate("k4", 5)  # after the flush: sent after it
        watcher.invalidate("k4", 6)  # every change is sent, in order
        out = []
        notices = watcher.notices()
        for _ in range(4):
            n = await anext(notices)
            out.append((n.sequence, n.kind, n.key, n.version, n.reason))
        await notices.aclose()
        return out

    assert asyncio.run(scenario()) == [
        (1, Kind.READY, "", 0, ""),
        (2, Kind.FLUSH, "", 0, FLUSH_TOO_SLOW),
        (3, Kind.INVALIDATION, "k4", 5, ""),
        (4, Kind.INVALIDATION, "k4", 6, ""),
    ]


def test_prefixes_and_keys_decide_what_a_stream_wants() -> None:
    async def scenario() -> list[bool]:
        watcher = Watcher(WatchSpec(("a", "b:"), frozenset({"z"})))
        every = Watcher(WatchSpec(("",), frozenset()))
        keys = ("a", "a1", "b", "b:1", "z", "zz", "")
        return [watcher.wants(k) for k in keys] + [every.wants(k) for k in keys]

    assert asyncio.run(scenario()) == [True, True, False, True, True, False, False] + [True] * 7


def test_a_stream_buffers_pushed_values_up_to_a_byte_bound_and_strips_them_unless_asked() -> None:
    async def scenario() -> tuple[list[tuple[Kind, str, bytes | None]], list[bytes | None]]:
        pushed = Pushed(b"12345678", 1, 0)
        asked = Watcher(WatchSpec(("",), frozenset(), values=True), buffer_bytes=20)
        other = Watcher(WatchSpec(("",), frozenset()), buffer_bytes=20)
        for watcher in (asked, other):
            watcher.ready()
            watcher.invalidate("a", 1, pushed)
            watcher.invalidate("b", 2, pushed)  # 16 bytes waiting
            watcher.invalidate("c", 3, pushed)  # 24 would pass the bound: dropped, a flush queued
            watcher.invalidate("d", 4, pushed)  # after the flush: sent
        out = []
        notices = asked.notices()
        for _ in range(3):
            n = await anext(notices)
            out.append((n.kind, n.key, n.pushed.value if n.pushed else None))
        await notices.aclose()
        others = other.notices()
        stripped = []
        for _ in range(5):
            n = await anext(others)
            stripped.append(n.pushed.value if n.pushed else None)
        await others.aclose()
        return out, stripped

    out, stripped = asyncio.run(scenario())
    assert out == [(Kind.READY, "", None), (Kind.FLUSH, "", None), (Kind.INVALIDATION, "d", b"12345678")]
    assert stripped == [None] * 5  # a stream that did not ask: no values held, so no flush either


@pytest.mark.parametrize(
    "message",
    [
        b"=1 2 3",  # too few fields
        b"=x 2 3 4 {k}v",  # a version that is no number
        b"=1 2 3 99 {k}v",  # a key length past the end
        b"=1 2 3 0 v",  # an empty key
        b"=1 2 3 5 other",  # not an entry key of this tenant
    ],
)
def test_an_unreadable_pushed_value_flushes_every_stream(message: bytes) -> None:
    async def scenario() -> list[tuple[Kind, str]]:
        keys = CacheKeys("t")
        hub = InvalidationHub.__new__(InvalidationHub)  # only its dispatch: no Redis
        hub._keys = keys
        watcher = Watcher(WatchSpec(("",), frozenset(), values=True))
        watcher.ready()
        hub._watchers = {watcher}
        entry = keys.entry("k").encode()
        hub._dispatch(message.replace(b"{k}", entry).replace(b" 4 ", b" %d " % len(entry)))
        notices = watcher.notices()
        said = [(n.kind, n.reason) for n in [await anext(notices), await anext(notices)]]
        await notices.aclose()
        return said

    assert asyncio.run(scenario()) == [(Kind.READY, ""), (Kind.FLUSH, FLUSH_UNREADABLE)]


def test_a_pushed_value_is_read_back_exactly() -> None:
    async def scenario() -> tuple[str, int, Pushed | None]:
        keys = CacheKeys("t")
        hub = InvalidationHub.__new__(InvalidationHub)
        hub._keys = keys
        watcher = Watcher(WatchSpec(("",), frozenset(), values=True))
        watcher.ready()
        hub._watchers = {watcher}
        entry = keys.entry("a key {with} spaces").encode()
        value = b"bytes with spaces \x00 and = signs"
        hub._dispatch(b"=17 1700000000123 250 %d %s%s" % (len(entry), entry, value))
        notices = watcher.notices()
        await anext(notices)
        n = await anext(notices)
        await notices.aclose()
        return n.key, n.version, n.pushed

    key, version, pushed = asyncio.run(scenario())
    assert (key, version) == ("a key {with} spaces", 17)
    assert pushed == Pushed(b"bytes with spaces \x00 and = signs", 1700000000123, 250)


# -- batches: the invalidations waiting for a stream that asked for them go as one message ----------


def _drain(watcher: Watcher, count: int) -> list[Notice]:
    async def scenario() -> list[Notice]:
        notices = watcher.notices()
        out = [await anext(notices) for _ in range(count)]
        await notices.aclose()
        return out

    return asyncio.run(scenario())


def test_waiting_invalidations_go_as_one_batch_in_order_to_a_stream_that_asks() -> None:
    pushed = Pushed(b"v", 1, 0)
    batched = Watcher(WatchSpec(("",), frozenset(), values=True, batch=True))
    single = Watcher(WatchSpec(("",), frozenset(), values=True))
    for watcher in (batched, single):
        watcher.ready()
        watcher.invalidate("a", 1, pushed)
        watcher.invalidate("b", 2)
        watcher.invalidate("a", 3, pushed)
    ready, batch = _drain(batched, 2)
    assert (ready.sequence, ready.kind) == (1, Kind.READY)
    assert (batch.sequence, batch.kind) == (2, Kind.BATCH)
    assert batch.batch == (("a", 1, pushed), ("b", 2, None), ("a", 3, pushed))
    # Without asking: one message per change, numbered on.
    said = _drain(single, 4)
    assert [(n.sequence, n.kind, n.key, n.version) for n in said] == [
        (1, Kind.READY, "", 0),
        (2, Kind.INVALIDATION, "a", 1),
        (3, Kind.INVALIDATION, "b", 2),
        (4, Kind.INVALIDATION, "a", 3),
    ]


def test_a_lone_invalidation_is_not_held_back_for_a_batch() -> None:
    watcher = Watcher(WatchSpec(("",), frozenset(), batch=True))
    watcher.ready()
    watcher.invalidate("only", 7)
    _, alone = _drain(watcher, 2)
    assert (alone.sequence, alone.kind, alone.key, alone.version, alone.batch) == (
        2,
        Kind.INVALIDATION,
        "only",
        7,
        (),
    )


def test_a_batch_is_bounded_in_count_and_in_bytes() -> None:
    counted = Watcher(WatchSpec(("",), frozenset(), batch=True))
    counted.ready()
    for i in range(invalidations.BATCH_MAX + 3):
        counted.invalidate(f"k{i}", i + 1)
    _, first, rest = _drain(counted, 3)
    assert len(first.batch) == invalidations.BATCH_MAX and len(rest.batch) == 3
    assert [c[1] for c in first.batch + rest.batch] == list(range(1, invalidations.BATCH_MAX + 4))

    third = invalidations.BATCH_BYTES // 3 + 1  # three values pass the bound, two do not
    big = Pushed(b"x" * third, 1, 0)
    sized = Watcher(WatchSpec(("",), frozenset(), values=True, batch=True), buffer_bytes=8 * third)
    sized.ready()
    for i in range(5):
        sized.invalidate(f"big{i}", i + 1, big)
    _, first, rest = _drain(sized, 3)
    assert [c[0] for c in first.batch] == ["big0", "big1"]
    assert [c[0] for c in rest.batch] == ["big2", "big3"]  # again two; the last waits for the next
    assert sized._bytes == third  # what is left waiting is counted: the last one


def test_a_batch_comes_whole_and_in_order_over_a_live_stream(
    coord: CoordUnderTest, channel: grpc.Channel, watches: list[Watch]
) -> None:
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    watch = Watch(stub, prefixes=["bat"], values=True, batch=True)  # no namespace: values pushed
    watches.append(watch)
    watch.ready()
    with grpc.insecure_channel(coord.target) as other:
        writer = cache_pb2_grpc.CacheServiceStub(other)
        # One BatchSet: its writes publish back to back, so the stream is sent batches when busy.
        requests = [pb.SetRequest(key=f"bat{i % 5}", value=b"%d" % i, ttl=TTL) for i in range(200)]
        stored = writer.BatchSet(pb.BatchSetRequest(requests=requests))
    changes: list[pb.Invalidation] = []
    sequences = []
    while len(changes) < 200:
        message = watch.next()
        sequences.append(message.sequence)
        kind = message.WhichOneof("kind")
        assert kind in ("invalidation", "batch"), message
        if kind == "batch":
            assert len(message.batch.invalidations) >= 2
            changes.extend(message.batch.invalidations)
        else:
            changes.append(message.invalidation)
    # The burst went in batches: far fewer messages than changes (3 to 27 of them were seen).
    assert len(sequences) < 100, f"{len(sequences)} messages for 200 changes"
    assert len(changes) == 200 and sequences == list(range(2, 2 + len(sequences)))
    for i in range(5):  # each key's changes in the order they were made, each with its entry
        mine = [c for c in changes if c.key == f"bat{i}"]
        assert [c.version for c in mine] == [r.version for r in stored.responses[i::5]]
        assert [c.entry.value for c in mine] == [b"%d" % n for n in range(i, 200, 5)]
