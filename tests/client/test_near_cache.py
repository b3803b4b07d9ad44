"""The near cache of the Python client: hits answered from memory (no call at all), invalidations from
other clients and servers, read-your-writes, nothing stale after the stream or the server's
subscription is lost, expiry honoured, LRU bounds, and the asyncio client alike.

Calls are counted by wrapping the client's transport (every unary call goes through it), and Redis's
own command counters show that a hit reaches no Redis either. Nothing here asserts a duration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from coord.cache.v1 import cache_pb2
from coord_client import AsyncClient, Client, Entry, NearCache
from coord_client.cache._near import Flight, Ticket

from ..conftest import CoordThread, CoordUnderTest, RedisProcess, wait_for

GET = "/coord.cache.v1.CacheService/Get"
BATCH_GET = "/coord.cache.v1.CacheService/BatchGet"


class Calls:
    """Counts the unary calls a client sends, by method."""

    def __init__(self, client: Client | AsyncClient) -> None:
        self.methods: list[str] = []
        transport: Any = client._transport
        original = transport.call
        if isinstance(client, AsyncClient):

            async def counted_async(callable_: Any, method: str, request: Any, limit: Any = None) -> Any:
                self.methods.append(method)
                return await original(callable_, method, request, limit)

            transport.call = counted_async
        else:

            def counted(callable_: Any, method: str, request: Any, limit: Any = None) -> Any:
                self.methods.append(method)
                return original(callable_, method, request, limit)

            transport.call = counted

    def count(self, method: str = GET) -> int:
        return self.methods.count(method)


def _same_time(a: datetime | None, b: datetime | None) -> bool:
    """Expiry times as reported by different calls (the server's are to the millisecond)."""
    assert a is not None and b is not None
    return abs((a - b).total_seconds()) < 0.01


def evalsha_calls(coord: CoordUnderTest) -> int:
    """EVALSHA calls Redis has served so far (every node of a Cluster)."""
    nodes = coord.backing.nodes if hasattr(coord.backing, "nodes") else [coord.backing]
    total = 0
    for node in nodes:
        with node.client() as r:
            stats = r.info("commandstats")
            total += int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return total


@pytest.fixture
def writer(coord: CoordUnderTest) -> Iterator[Client]:
    """Another client: its writes reach the near cache only as invalidations."""
    with Client(coord.target, timeout=5) as c:
        yield c


def near_client(target: str, near: NearCache) -> Client:
    client = Client(target, timeout=5, near_cache=near)
    wait_for(lambda: near.ready, "the near cache's stream to be ready")
    return client


def test_a_hit_touches_no_network_and_no_redis(coord: CoordUnderTest, writer: Client) -> None:
    writer.cache.set("n:1", b"one", ttl=60)
    near = NearCache(prefixes=["n:"])
    with near_client(coord.target, near) as client:
        calls = Calls(client)
        first = client.cache.get("n:1")
        assert first.found and first.value == b"one"
        before = evalsha_calls(coord)
        hits = [client.cache.get("n:1") for _ in range(100)]
        assert evalsha_calls(coord) == before
        assert all(h == first for h in hits)
        assert calls.count() == 1
        stats = near.stats
        assert (stats.hits, stats.misses, stats.entries) == (100, 1, 1)
        assert client.cache.near_cache is near


def test_keys_not_watched_always_go_to_the_server(coord: CoordUnderTest, writer: Client) -> None:
    writer.cache.set("other", b"x", ttl=60)
    near = NearCache(prefixes=["n:"], keys=["exact"])
    with near_client(coord.target, near) as client:
        calls = Calls(client)
        for _ in range(3):
            assert client.cache.get("other").found
            assert not client.cache.get("exactly").found
        for _ in range(3):
            assert not client.cache.get("exact").found  # a miss is kept too
        assert calls.count() == 7
        assert (near.stats.hits, near.stats.misses) == (2, 1)


def test_an_invalidation_from_another_client_makes_the_next_read_fresh(
    coord: CoordUnderTest, writer: Client
) -> None:
    writer.cache.set("k", b"v1", ttl=60)
    near = NearCache()
    with near_client(coord.target, near) as client:
        assert client.cache.get("k").value == b"v1"
        assert client.cache.get("k").value == b"v1"  # a hit
        v2 = writer.cache.set("k", b"v2", ttl=60)
        wait_for(lambda: near.stats.invalidations >= 1, "the invalidation")
        fresh = client.cache.get("k")
        assert (fresh.value, fresh.version) == (b"v2", v2.version)
        writer.cache.delete("k")
        wait_for(lambda: near.stats.invalidations >= 2, "the deletion's invalidation")
        assert not client.cache.get("k").found


@pytest.mark.parametrize("values", [True, False])
def test_a_write_elsewhere_carries_the_new_entry_so_no_read_is_needed(
    coord: CoordUnderTest, writer: Client, values: bool
) -> None:
    writer.cache.set("carried", b"v1", ttl=60)
    near = NearCache(keys=["carried"], values=values)
    with near_client(coord.target, near) as client:
        calls = Calls(client)
        assert client.cache.get("carried").value == b"v1"
        assert calls.count() == 1
        v2 = writer.cache.set("carried", b"v2", ttl=60, compute_time=0.5)
        wait_for(lambda: near.stats.invalidations >= 1, "the invalidation")
        fresh = client.cache.get("carried")
        assert (fresh.value, fresh.version, fresh.compute_time) == (b"v2", v2.version, 0.5)
        assert _same_time(fresh.expire_time, v2.expire_time)
        # With values the held entry was replaced in place: no second read. Without, it was dropped.
        assert calls.count() == (1 if values else 2)
        assert near.stats.updates == (1 if values else 0)


def test_writes_through_another_server_invalidate_too(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    second = start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster")
    near = NearCache(keys=["shared"])
    with near_client(coord.target, near) as client, Client(second.target, timeout=5) as elsewhere:
        elsewhere.cache.set("shared", b"v1", ttl=60)
        assert client.cache.get("shared").value == b"v1"
        elsewhere.cache.increment("counter")  # not watched: no invalidation for this near cache
        elsewhere.cache.set("shared", b"v2", ttl=60)
        # The invalidations of both sets (the first may come after the read that kept v1).
        wait_for(lambda: near.stats.invalidations >= 2, "the invalidations from the other server")
        assert client.cache.get("shared").value == b"v2"


def test_read_your_writes(coord: CoordUnderTest) -> None:
    near = NearCache()
    with near_client(coord.target, near) as client:
        assert not client.cache.get("mine").found  # a miss, kept
        client.cache.set("mine", b"1", ttl=60)
        assert client.cache.get("mine").value == b"1"  # not the kept miss
        assert client.cache.get("mine").value == b"1"
        client.cache.set("mine", b"2", ttl=60)
        assert client.cache.get("mine").value == b"2"
        client.cache.batch_set({"mine": b"3"}, ttl=60)
        assert client.cache.get("mine").value == b"3"
        client.cache.increment("count", 2)
        assert client.cache.get("count").value == b"2"
        client.cache.increment("count", 3)
        assert client.cache.get("count").value == b"5"
        client.cache.delete("mine")
        assert not client.cache.get("mine").found
        client.cache.set("short", b"s", ttl=60)
        long = client.cache.get("short").expire_time
        touched = client.cache.touch("short", 30)
        assert _same_time(client.cache.get("short").expire_time, touched.expire_time)
        assert not _same_time(long, touched.expire_time)


def test_batch_get_answers_hits_from_memory_and_asks_for_the_rest(
    coord: CoordUnderTest, writer: Client
) -> None:
    writer.cache.batch_set({"b:1": b"1", "b:2": b"2", "c:1": b"c"}, ttl=60)
    near = NearCache(prefixes=["b:"])
    with near_client(coord.target, near) as client:
        calls = Calls(client)
        assert client.cache.get("b:1").value == b"1"
        entries = client.cache.batch_get(["b:1", "b:2", "c:1", "b:3", "b:1"])
        assert [(e.key, e.found, e.value) for e in entries] == [
            ("b:1", True, b"1"),
            ("b:2", True, b"2"),
            ("c:1", True, b"c"),
            ("b:3", False, b""),
            ("b:1", True, b"1"),
        ]
        again = client.cache.batch_get(["b:1", "b:2", "b:3"])
        assert [(e.key, e.found) for e in again] == [("b:1", True), ("b:2", True), ("b:3", False)]
        assert calls.count(BATCH_GET) == 1  # the second batch came from memory only


def test_a_lost_server_subscription_leaves_nothing_stale(coord: CoordUnderTest, writer: Client) -> None:
    writer.cache.set("k", b"v1", ttl=60)
    near = NearCache()
    with near_client(coord.target, near) as client:
        assert client.cache.get("k").value == b"v1"
        flushes = near.stats.flushes
        nodes = coord.backing.nodes if hasattr(coord.backing, "nodes") else [coord.backing]
        for node in nodes:  # the server's subscription is cut; the write below may be lost by it
            with node.client() as r:
                r.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        writer.cache.set("k", b"v2", ttl=60)
        wait_for(lambda: near.stats.flushes >= flushes + 2, "the flushes of the lost subscription")
        assert client.cache.get("k").value == b"v2"


def test_a_broken_stream_sends_every_read_to_the_server_until_ready_again(
    coord: CoordUnderTest, writer: Client
) -> None:
    writer.cache.set("k", b"v1", ttl=60)
    near = NearCache()
    with near_client(coord.target, near) as client:
        calls = Calls(client)
        assert client.cache.get("k").value == b"v1"
        runner: Any = near.runner
        runner._call.cancel()  # the stream dies (as if the connection broke)
        wait_for(lambda: near.stats.reconnects >= 1, "the stream to be opened again")
        writer.cache.set("k", b"v2", ttl=60)  # perhaps while no stream is ready: no invalidation
        assert client.cache.get("k").value == b"v2"
        wait_for(lambda: near.ready, "the new stream to be ready")
        got = [client.cache.get("k").value for _ in range(3)]
        assert got[-1] == b"v2" and calls.count() >= 2


def test_an_entry_is_never_served_past_its_expiry(coord: CoordUnderTest, writer: Client) -> None:
    # The client and Redis share this machine's clock: 1 ms of margin is for the float conversions.
    near = NearCache(expiry_margin=0.001)
    with near_client(coord.target, near) as client:
        writer.cache.set("brief", b"v", ttl=0.3)
        served = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            hits = near.stats.hits
            asked = time.time()  # the clock Redis's TIME reads too (one machine)
            entry = client.cache.get("brief")
            if not entry.found:
                break
            assert entry.expire_time is not None
            expires = entry.expire_time.timestamp()
            if near.stats.hits > hits:  # from memory: strictly before its expiry
                assert expires > asked
                served += 1
            else:  # from Redis, which serves a key through the millisecond it expires in
                assert expires >= int(asked * 1000) / 1000
        else:
            raise AssertionError("the entry never expired")
        assert served >= 1


def test_a_touch_elsewhere_makes_the_new_expiry_seen(coord: CoordUnderTest, writer: Client) -> None:
    writer.cache.set("t", b"v", ttl=600)
    near = NearCache()
    with near_client(coord.target, near) as client:
        before = client.cache.get("t").expire_time
        touched = writer.cache.touch("t", 30)
        wait_for(lambda: near.stats.invalidations >= 1, "the touch's invalidation")
        after = client.cache.get("t").expire_time
        assert _same_time(after, touched.expire_time) and not _same_time(after, before)


def test_lru_bounds_on_entries_and_bytes(coord: CoordUnderTest, writer: Client) -> None:
    writer.cache.batch_set({f"l:{i}": b"x" * 1000 for i in range(5)}, ttl=60)
    writer.cache.set("big", b"y" * 5000, ttl=60)
    near = NearCache(max_entries=3, max_bytes=2500)  # room for two 1000-byte values
    with near_client(coord.target, near) as client:
        calls = Calls(client)
        for i in range(5):
            client.cache.get(f"l:{i}")
        stats = near.stats
        assert (stats.entries, stats.evictions) == (2, 3)
        assert stats.bytes <= 2500
        client.cache.get("l:4")  # the most recent: kept
        client.cache.get("l:0")  # the least recent: gone
        assert calls.count() == 6
        client.cache.get("big")
        client.cache.get("big")  # larger than max_bytes: never kept
        assert calls.count() == 8
    small = NearCache(max_entries=2)
    with near_client(coord.target, small) as client:
        calls = Calls(client)
        for key in ("l:0", "l:1", "l:0", "l:2", "l:0", "l:1"):
            client.cache.get(key)
        assert calls.count() == 4  # l:0 stayed (used again), l:1 went first
        assert small.stats.entries == 2


def test_refused_stream_means_no_near_cache_and_every_read_from_the_server(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(redis_single.url, cache_invalidations=False)
    near = NearCache()
    with Client(server.target, timeout=5, near_cache=near) as client:
        wait_for(lambda: near.last_error is not None, "the stream to be refused")
        calls = Calls(client)
        client.cache.set("k", b"v", ttl=60)
        for _ in range(3):
            assert client.cache.get("k").value == b"v"
        assert calls.count() == 3 and not near.ready and near.stats.entries == 0
        assert "FAILED_PRECONDITION" in str(getattr(near.last_error, "code", lambda: "")())


def test_close_stops_the_stream_and_the_near_cache(coord: CoordUnderTest) -> None:
    near = NearCache()
    client = near_client(coord.target, near)
    client.cache.get("k")
    client.close()
    assert not near.ready and near.stats.entries == 0
    with pytest.raises(ValueError, match="another client"):
        Client(coord.target, near_cache=near)


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError):
        NearCache(prefixes="user:")
    with pytest.raises(ValueError):
        NearCache(keys=["a\nb"])
    with pytest.raises(ValueError):
        NearCache(max_entries=0)
    with pytest.raises(TypeError):
        Client("127.0.0.1:1", near_cache="yes")  # type: ignore[arg-type]
    assert NearCache().prefixes == ("",)
    assert NearCache(keys=["k"]).prefixes == ()


# -- the race of a read in flight, on the near cache itself (no server needed) -----------------------


def _ready(near: NearCache) -> None:
    near.opened(True)
    near.received(cache_pb2.WatchInvalidationsResponse(sequence=1, ready=cache_pb2.Ready()))


def _entry(key: str) -> Entry:
    return Entry(key, True, b"v", 1, datetime.fromtimestamp(time.time() + 600, UTC))


def test_a_read_in_flight_keeps_nothing_when_its_key_changed_meanwhile() -> None:
    near = NearCache()
    _ready(near)
    sequence = 1

    def message(**kind: Any) -> cache_pb2.WatchInvalidationsResponse:
        nonlocal sequence
        sequence += 1
        return cache_pb2.WatchInvalidationsResponse(sequence=sequence, **kind)

    ticket = near.read("k")
    assert isinstance(ticket, Ticket)
    near.received(message(invalidation=cache_pb2.Invalidation(key="k", version=7)))
    near.settle(ticket, _entry("k"))
    assert near.stats.entries == 0  # the answer may predate version 7

    other = near.read("k")
    unrelated = near.read("j")
    near.received(message(invalidation=cache_pb2.Invalidation(key="j", version=1)))
    near.settle(other, _entry("k"))
    near.settle(unrelated, _entry("j"))
    assert near.stats.entries == 1 and isinstance(near.read("k"), Entry)  # only j changed

    flushed = near.read("f")
    near.received(message(flush=cache_pb2.Flush(reason="too slow")))
    near.settle(flushed, _entry("f"))
    assert near.stats.entries == 0

    mine = near.read("w")
    near.wrote(["w"])  # this client writes it
    near.settle(mine, _entry("w"))
    assert near.stats.entries == 0

    lost = near.read("l")
    near.lost(None)
    near.settle(lost, _entry("l"))
    assert near.stats.entries == 0 and not near.ready


def test_reads_of_a_key_on_its_way_join_it_and_are_never_left_waiting() -> None:
    near = NearCache()
    _ready(near)
    owner = near.read("k")
    joiner = near.read("k")
    assert isinstance(owner, Ticket) and isinstance(joiner, Flight)
    answer = _entry("k")
    near.settle(owner, answer)
    assert joiner.wait(0) is answer  # one read reached the server for both

    near.received(
        cache_pb2.WatchInvalidationsResponse(sequence=2, invalidation=cache_pb2.Invalidation(key="k"))
    )
    first = near.read("k")
    early = near.read("k")
    near.received(
        cache_pb2.WatchInvalidationsResponse(sequence=3, invalidation=cache_pb2.Invalidation(key="k"))
    )
    second = near.read("k")  # the first flight may predate the change: not joined, a new one
    late = near.read("k")
    assert isinstance(early, Flight) and isinstance(late, Flight) and early is not late
    near.settle(first, _entry("k"))
    assert early.wait(0) is None  # not kept: its joiners ask the server themselves
    fresh = _entry("k")
    near.settle(second, fresh)
    assert late.wait(0) is fresh and near.stats.entries == 1


def test_a_carried_entry_replaces_only_an_older_entry_held() -> None:
    near = NearCache()
    _ready(near)
    sequence = 1

    def carrying(key: str, version: int, value: bytes = b"new", ttl: float = 600) -> None:
        nonlocal sequence
        sequence += 1
        entry = cache_pb2.Entry(key=key, found=True, value=value, version=version)
        entry.expire_time.FromDatetime(datetime.fromtimestamp(time.time() + ttl, UTC))
        invalidation = cache_pb2.Invalidation(key=key, version=version, entry=entry)
        near.received(cache_pb2.WatchInvalidationsResponse(sequence=sequence, invalidation=invalidation))

    def held(key: str) -> Entry | None:
        local = near.read(key)
        if isinstance(local, Entry):
            return local
        near.settle(local, None)  # (a read that went nowhere: leave nothing behind)
        return None

    near.settle(near.read("k"), Entry("k", True, b"held", 5, datetime.fromtimestamp(time.time() + 60, UTC)))
    carrying("k", 3)  # older than the entry held (read ahead of the stream): dropped, not replaced
    assert held("k") is None
    near.settle(near.read("k"), Entry("k", True, b"held", 5, datetime.fromtimestamp(time.time() + 60, UTC)))
    before = held("k")
    carrying("k", 5)  # the same write: the entry held stays as it is (a Touch may have moved its expiry)
    assert held("k") is before
    carrying("k", 7)  # newer: it replaces the entry held
    now = held("k")
    assert now is not None and (now.value, now.version) == (b"new", 7)
    carrying("k", 9, ttl=-1)  # already expired: dropped, never served
    assert held("k") is None
    carrying("absent", 4)  # a key not held: nothing is made from an invalidation
    assert held("absent") is None
    near.settle(near.read("miss"), Entry("miss", False))  # a cached miss is dropped, not replaced
    carrying("miss", 4)
    assert held("miss") is None
    assert near.stats.updates == 1


def test_a_carried_entry_never_undoes_this_clients_own_write() -> None:
    near = NearCache()
    _ready(near)
    near.settle(near.read("k"), Entry("k", True, b"old", 5, datetime.fromtimestamp(time.time() + 60, UTC)))
    near.wrote(["k"])  # this client writes k (version 8)...
    near.wrote(["k"])  # ...and is answered
    older = cache_pb2.Entry(key="k", found=True, value=b"theirs", version=6)
    older.expire_time.FromDatetime(datetime.fromtimestamp(time.time() + 60, UTC))
    near.received(
        cache_pb2.WatchInvalidationsResponse(
            sequence=2, invalidation=cache_pb2.Invalidation(key="k", version=6, entry=older)
        )
    )  # another client's write before ours, late on the stream: nothing held to replace
    assert not isinstance(near.read("k"), Entry)


def test_a_batch_is_applied_in_order_as_its_changes_one_by_one() -> None:
    near = NearCache()
    _ready(near)
    assert near.request().batch  # the stream asks for batches
    for key in ("a", "b", "c"):
        near.settle(
            near.read(key), Entry(key, True, b"held", 5, datetime.fromtimestamp(time.time() + 60, UTC))
        )

    def carried(key: str, version: int) -> cache_pb2.Invalidation:
        entry = cache_pb2.Entry(key=key, found=True, value=b"v%d" % version, version=version)
        entry.expire_time.FromDatetime(datetime.fromtimestamp(time.time() + 60, UTC))
        return cache_pb2.Invalidation(key=key, version=version, entry=entry)

    changes = [
        carried("a", 6),
        carried("a", 7),  # a later change of the same key in the same batch: the newest is kept
        cache_pb2.Invalidation(key="b", version=0),  # deleted: dropped
        carried("c", 9),
    ]
    near.received(
        cache_pb2.WatchInvalidationsResponse(
            sequence=2, batch=cache_pb2.InvalidationBatch(invalidations=changes)
        )
    )
    a, b, c = near.read("a"), near.read("b"), near.read("c")
    assert isinstance(a, Entry) and (a.value, a.version) == (b"v7", 7)
    assert not isinstance(b, Entry)
    near.settle(b, None)
    assert isinstance(c, Entry) and c.version == 9
    stats = near.stats
    assert (stats.invalidations, stats.updates, stats.flushes) == (4, 3, 0)
    # The batch took one sequence number: the next message is 3, no hole.
    near.received(
        cache_pb2.WatchInvalidationsResponse(sequence=3, invalidation=cache_pb2.Invalidation(key="z"))
    )
    assert near.stats.flushes == 0 and near.stats.entries == 2


def test_a_hole_in_the_numbering_drops_everything() -> None:
    near = NearCache()
    _ready(near)
    near.settle(near.read("k"), _entry("k"))
    assert near.stats.entries == 1
    near.received(
        cache_pb2.WatchInvalidationsResponse(sequence=3, invalidation=cache_pb2.Invalidation(key="x"))
    )
    assert near.stats.entries == 0 and near.stats.flushes == 1 and near.ready


# -- the asyncio client --------------------------------------------------------------------------------


def test_async_client_near_cache(coord: CoordUnderTest, writer: Client) -> None:
    writer.cache.set("a:1", b"v1", ttl=60)

    async def scenario() -> None:
        near = NearCache(prefixes=["a:"])
        async with AsyncClient(coord.target, timeout=5, near_cache=near) as client:
            for _ in range(400):
                if near.ready:
                    break
                await asyncio.sleep(0.05)
            assert near.ready
            calls = Calls(client)
            assert (await client.cache.get("a:1")).value == b"v1"
            hits = await asyncio.gather(*(client.cache.get("a:1") for _ in range(50)))
            assert {h.value for h in hits} == {b"v1"} and calls.count() == 1
            entries = await client.cache.batch_get(["a:1", "a:2"])
            assert [e.found for e in entries] == [True, False] and calls.count(BATCH_GET) == 1
            await asyncio.to_thread(writer.cache.set, "a:1", b"v2", ttl=60)
            for _ in range(400):
                if near.stats.invalidations:
                    break
                await asyncio.sleep(0.05)
            assert (await client.cache.get("a:1")).value == b"v2"
            await client.cache.set("a:1", b"v3", ttl=60)  # read-your-writes
            assert (await client.cache.get("a:1")).value == b"v3"
            assert near.stats.hits >= 50
        assert not near.ready

    asyncio.run(scenario())
