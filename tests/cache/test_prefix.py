"""Invalidation by prefix (InvalidatePrefix): the entries under a namespace become misses on every read
path and through every Coord server, other namespaces ("user:420:" beside "user:42:") are untouched,
later writes are hits, a Set or Increment racing the invalidation never leaves a stale hit, near
caches are flushed, every key expires, and bad input is refused naming the field — against
single-node Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence

import grpc
import pytest
from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord_server.cache.keys import CacheKeys
from coord_server.cache.prefixes import FLUSH_REASON, PrefixRules
from coord_server.cache.store import CacheStore, SetItem
from coord_server.cache.tags import PREFIX_MARK, TTL_MARGIN_MS, unpack
from coord_server.redis import RedisBackend, ScriptSet

from ..collections.test_lists import all_keys, assert_every_key_expires
from ..conftest import CoordThread, CoordUnderTest, RedisClusterProcess, free_port
from ..server.test_metrics import samples, value
from . import _layout as layout
from .test_tags import found, other_server, put, streamed
from .test_validation import call_error, details
from .test_watch_invalidations import Watch

Stub = cache_pb2_grpc.CacheServiceStub
KEYS = CacheKeys("default")
TTL = duration_pb2.Duration(seconds=60)


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield Stub(channel)


def invalidate(stub: Stub, prefix: str) -> None:
    stub.InvalidatePrefix(pb.InvalidatePrefixRequest(prefix=prefix))


def hits(stub: Stub, keys: Sequence[str]) -> list[bool]:
    return [found(stub, k) for k in keys]


def recorded(coord: CoordUnderTest, key: str) -> dict[str, int]:
    """The namespace generations the entry of ``key`` recorded (field t's prefix pairs)."""
    with coord.redis() as r:
        entry = layout.read(r, KEYS.entry(key))
    assert entry is not None
    pairs = unpack(entry.tags) if entry.tags is not None else []
    return {name[1:]: g for name, g in pairs if name.startswith(PREFIX_MARK)}


# -- what InvalidatePrefix does -----------------------------------------------------------------------


def test_an_invalidated_prefix_makes_its_entries_misses_on_every_read_path(
    coord: CoordUnderTest, stub: Stub
) -> None:
    keys = ["user:42:name", "user:42:mail", "user:42:", "user:420:name", "user:4:x", "user:42", "post:42:x"]
    for key in keys:
        put(stub, key, b"v")
    assert streamed(stub, keys) == [True] * len(keys)

    invalidate(stub, "user:42:")
    # "user:420:" and "user:4:" are other namespaces; "user:42" (no delimiter after 42) is not under it.
    expected = [False, False, False, True, True, True, True]
    assert hits(stub, keys) == expected
    assert [e.found for e in stub.BatchGet(pb.BatchGetRequest(keys=keys)).entries] == expected
    assert streamed(stub, keys) == expected
    lease = duration_pb2.Duration(seconds=30)
    leased = stub.GetOrLease(pb.GetOrLeaseRequest(key="user:42:name", lease_ttl=lease))
    assert not leased.entry.found and leased.lease_token  # a miss: the caller fills it
    kept = stub.GetOrLease(pb.GetOrLeaseRequest(key="user:420:name", lease_ttl=lease))
    assert kept.entry.found and not kept.lease_token
    # The entries stay in Redis (the invalidation is O(1)): they only read as misses.
    with coord.redis() as r:
        assert all(r.exists(KEYS.entry(k)) for k in keys)


def test_a_write_after_the_invalidation_is_a_hit(coord: CoordUnderTest, stub: Stub) -> None:
    put(stub, "user:42:name", b"old")
    invalidate(stub, "user:42:")
    assert not found(stub, "user:42:name")
    again = put(stub, "user:42:name", b"new")
    entry = stub.Get(pb.GetRequest(key="user:42:name")).entry
    assert entry.found and entry.value == b"new" and entry.version == again.version
    assert set(recorded(coord, "user:42:name")) == {"user:42:"}  # only the invalidated namespace
    # A counter created after it is a hit too (its generation is recorded after the Increment).
    counter = stub.Increment(pb.IncrementRequest(key="user:42:visits", delta=5, ttl=TTL))
    assert counter.created and counter.value == 5
    entry = stub.Get(pb.GetRequest(key="user:42:visits")).entry
    assert entry.found and entry.value == b"5" and entry.version == counter.version
    assert stub.Increment(pb.IncrementRequest(key="user:42:visits", delta=1, ttl=TTL)).value == 6
    assert stub.Get(pb.GetRequest(key="user:42:visits")).entry.value == b"6"
    # Invalidated again, it moves on again.
    invalidate(stub, "user:42:")
    assert hits(stub, ["user:42:name", "user:42:visits"]) == [False, False]


def test_a_counter_written_before_the_invalidation_stays_a_miss_until_set(stub: Stub) -> None:
    stub.Increment(pb.IncrementRequest(key="user:42:n", delta=1, ttl=TTL))
    invalidate(stub, "user:42:")
    # An Increment keeps what the entry recorded, as it keeps its tags: still written before it.
    assert stub.Increment(pb.IncrementRequest(key="user:42:n", delta=1, ttl=TTL)).value == 2
    assert not found(stub, "user:42:n")
    put(stub, "user:42:n", b"0")
    assert stub.Increment(pb.IncrementRequest(key="user:42:n", delta=1, ttl=TTL)).value == 1
    assert stub.Get(pb.GetRequest(key="user:42:n")).entry.value == b"1"


def test_nested_namespaces(stub: Stub) -> None:
    keys = ["app:b:c", "app:b:", "app:c:d", "app:x", "apps:b:c", "ap:b:c"]
    for key in keys:
        put(stub, key, b"v")
    invalidate(stub, "app:b:")
    assert hits(stub, keys) == [False, False, True, True, True, True]
    put(stub, "app:b:c", b"v2")
    invalidate(stub, "app:")  # the outer one covers every deeper namespace
    assert hits(stub, keys) == [False, False, False, False, True, True]


def test_tags_and_namespaces_are_each_their_own(coord: CoordUnderTest, stub: Stub) -> None:
    put(stub, "user:42:name", b"v", "user:42:")  # a tag with a prefix's text
    put(stub, "other", b"v", "user:42:")
    put(stub, "user:42:mail", b"v")
    invalidate(stub, "user:42:")
    assert hits(stub, ["user:42:name", "other", "user:42:mail"]) == [False, True, False]
    put(stub, "user:42:name", b"v", "t")
    stub.InvalidateTags(pb.InvalidateTagsRequest(tags=["user:42:"]))
    assert hits(stub, ["user:42:name", "other"]) == [True, False]
    stub.InvalidateTags(pb.InvalidateTagsRequest(tags=["t"]))
    assert not found(stub, "user:42:name")
    with coord.redis() as r:  # distinct keys for the tag and the prefix of the same text
        assert r.exists(KEYS.tag("user:42:")) and r.exists(KEYS.namespace("user:42:"))


def test_a_missing_prefix_key_makes_a_miss_not_a_stale_hit(coord: CoordUnderTest, stub: Stub) -> None:
    invalidate(stub, "user:42:")
    put(stub, "user:42:name", b"v")
    assert found(stub, "user:42:name")
    with coord.redis() as r:
        assert r.delete(KEYS.namespace("user:42:")) == 1  # as if it had expired or been evicted
    assert not found(stub, "user:42:name")  # it recorded a generation the namespace no longer has
    put(stub, "user:42:name", b"v2")  # records nothing now: the namespace is at 0
    assert found(stub, "user:42:name") and recorded(coord, "user:42:name") == {}
    invalidate(stub, "user:42:")  # a new key, from the clock
    assert not found(stub, "user:42:name")


def test_the_depth_and_the_minimum_are_settings(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    deep = "a1:b2:c3:d4:e5:f"
    put(stub, deep, b"v")
    invalidate(stub, "a1:b2:c3:d4:")  # 4 delimiters: the default depth
    assert not found(stub, deep)
    short = other_server(coord, start_coord, cache_min_prefix=2, cache_prefix_depth=5)
    with grpc.insecure_channel(short.target) as channel:
        s = Stub(channel)
        put(s, "a:b:c", b"v")
        put(s, deep, b"v")
        invalidate(s, "a:")
        invalidate(s, "a1:b2:c3:d4:e5:")
        assert hits(s, ["a:b:c", deep]) == [False, False]


# -- across servers, near caches ----------------------------------------------------------------------


def test_an_invalidation_through_one_server_holds_on_every_server(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    second = other_server(coord, start_coord)
    with grpc.insecure_channel(second.target) as channel:
        far = Stub(channel)
        put(stub, "user:42:a", b"1")
        put(far, "user:42:b", b"2")
        assert found(far, "user:42:a") and found(stub, "user:42:b")
        invalidate(far, "user:42:")
        assert not any(found(s, k) for s in (stub, far) for k in ("user:42:a", "user:42:b"))
        put(far, "user:42:a", b"3")  # written after it through the other server: a hit on both
        assert found(stub, "user:42:a") and found(far, "user:42:a")


def test_near_caches_watching_any_server_are_flushed(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    second = other_server(coord, start_coord)
    watch = Watch(stub, prefixes=["user:"])
    try:
        watch.ready()
        with grpc.insecure_channel(second.target) as channel:
            invalidate(Stub(channel), "user:42:")
        message = watch.next()
        assert message.WhichOneof("kind") == "flush" and message.sequence == 2
        assert message.flush.reason == FLUSH_REASON
    finally:
        watch.cancel()


# -- a Set (or Increment) racing InvalidatePrefix ------------------------------------------------------


def _backend(coord: CoordUnderTest) -> RedisBackend:
    return RedisBackend.from_url(
        coord.backing.url, cluster=isinstance(coord.backing, RedisClusterProcess), timeout=5.0
    )


def _racing_store(backend: RedisBackend, stub: Stub, prefix: str) -> CacheStore:
    """A store (as a Coord server has) whose writes read their namespaces' generations, then let
    ``stub``'s server invalidate ``prefix``, then write: the race, made deterministic."""
    store = CacheStore(backend, ScriptSet("coord_server.cache"), KEYS, 60_000, prefix_rules=PrefixRules())
    read = store.prefixes.for_write

    async def read_then_invalidate(keys: Sequence[str]) -> dict[str, int]:
        generations = await read(keys)
        invalidate(stub, prefix)  # another server's call, returned before this write is made
        return generations

    store.prefixes.for_write = read_then_invalidate  # type: ignore[method-assign]
    return store


@pytest.mark.parametrize("before", ["never invalidated", "invalidated before"])
def test_a_set_racing_an_invalidation_is_never_a_stale_hit(
    coord: CoordUnderTest, stub: Stub, before: str
) -> None:
    if before == "invalidated before":
        invalidate(stub, "user:42:")  # the Set reads a generation, not the namespace's absence

    async def main() -> None:
        backend = _backend(coord)
        try:
            store = _racing_store(backend, stub, "user:42:")
            assert (await store.set(SetItem("user:42:name", b"v", 60_000))).stored
            assert (await store.increment("user:42:n", 1, 60_000)).created
            many = [SetItem("user:42:a", b"v", 60_000), SetItem("user:420:a", b"v", 60_000)]
            assert all(r.stored for r in await store.set_many(many))
        finally:
            await backend.close()

    asyncio.run(main())
    # Each write read the generations before the invalidation and was made after it returned.
    assert hits(stub, ["user:42:name", "user:42:n", "user:42:a", "user:420:a"]) == [False, False, False, True]
    put(stub, "user:42:name", b"v2")  # a write that reads after it is a hit
    assert found(stub, "user:42:name")


# -- TTLs ----------------------------------------------------------------------------------------------


def test_every_key_expires_and_a_prefix_key_outlives_its_entries(coord: CoordUnderTest, stub: Stub) -> None:
    long = duration_pb2.Duration(seconds=round(coord.settings.max_ttl))
    put(stub, "user:42:a", b"v")
    invalidate(stub, "user:42:")
    stub.Set(pb.SetRequest(key="user:42:b", value=b"v", ttl=long))
    assert_every_key_expires(coord)
    least = round(coord.settings.max_ttl * 1000) + TTL_MARGIN_MS - 60_000
    with coord.redis() as r:
        assert sorted(all_keys(coord)) == sorted(
            k.encode() for k in (KEYS.entry("user:42:a"), KEYS.entry("user:42:b"), KEYS.namespace("user:42:"))
        )
        assert r.pttl(KEYS.namespace("user:42:")) > max(least, r.pttl(KEYS.entry("user:42:b")))
        # A Touch renews it: the touched entry may outlive the invalidation's own TTL.
        r.pexpire(KEYS.namespace("user:42:"), 60_000)
    touched = stub.Touch(pb.TouchRequest(key="user:42:a", ttl=long))
    assert touched.found
    with coord.redis() as r:
        assert r.pttl(KEYS.namespace("user:42:")) > least


# -- cost: what a read and a write run ------------------------------------------------------------------


def test_reads_and_writes_run_one_script_per_namespace_and_none_without(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    port = free_port()
    server = other_server(coord, start_coord, metrics_listen=f"127.0.0.1:{port}")

    def runs(script: str) -> float:
        return value(samples(port), "coord_redis_script_duration_seconds_count", script=script)

    with grpc.insecure_channel(server.target) as channel:
        s = Stub(channel)
        put(s, "plain", b"v")
        assert found(s, "plain")
        s.BatchGet(pb.BatchGetRequest(keys=["plain", "missing", "a:c"]))  # "a:" is below the minimum
        assert runs("prefix_generation") == runs("prefix_check") == 0
        put(s, "user:42:name", b"v")  # namespaces "user:" and "user:42:", neither invalidated
        assert runs("prefix_generation") == 2
        assert recorded(coord, "user:42:name") == {}  # nothing recorded, no key made
        assert found(s, "user:42:name")
        assert runs("prefix_check") == 2
        assert runs("tag_check") == runs("tag_generation") == 0


def test_a_server_with_no_delimiter_checks_no_namespace(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    port = free_port()
    off = other_server(coord, start_coord, cache_prefix_delimiter="", metrics_listen=f"127.0.0.1:{port}")
    with grpc.insecure_channel(off.target) as channel:
        s = Stub(channel)
        put(s, "user:42:name", b"v")
        assert found(s, "user:42:name")
        error = call_error(lambda: invalidate(s, "user:42:"))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        info, _, _ = details(error)
        assert info.reason == "CACHE_PREFIX_INVALIDATION_OFF"
        assert info.metadata["setting"] == "COORD_CACHE_PREFIX_DELIMITER"
        names = ("prefix_generation", "prefix_check", "prefix_invalidate")
        assert [
            value(samples(port), "coord_redis_script_duration_seconds_count", script=n) for n in names
        ] == [
            0,
            0,
            0,
        ]


# -- bad input -----------------------------------------------------------------------------------------

BAD = [
    ("empty", "", "INVALID_FIELD", "must not be empty"),
    ("shorter than the minimum", "u:", "INVALID_FIELD", "at least 3"),
    ("not ending with the delimiter", "user:42", "INVALID_FIELD", "must end with the delimiter ':'"),
    ("too deep", "a:b:c:d:e:", "INVALID_FIELD", "at most 4 deep"),
    ("too long", "k" * 1024 + ":", "KEY_TOO_LONG", "limit is 1024 bytes"),
    ("a newline", "user:\n42:", "INVALID_FIELD", "must not contain"),
]


@pytest.mark.parametrize(("name", "prefix", "reason", "says"), BAD, ids=[c[0] for c in BAD])
def test_bad_prefixes_are_refused_naming_the_field(
    coord: CoordUnderTest, stub: Stub, name: str, prefix: str, reason: str, says: str
) -> None:
    error = call_error(lambda: invalidate(stub, prefix))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
    info, violations, _ = details(error)
    assert info.reason == reason and info.metadata["field"] == "prefix"
    assert [v[0] for v in violations] == ["prefix"]
    assert (error.details() or "").startswith("prefix: ") and says in (error.details() or "")
    assert all_keys(coord) == []  # nothing was written
