"""Invalidation by tag (Set tags, InvalidateTags): tagged entries become misses on every read path and
through every Coord server, other tags and untagged entries are untouched, a racing Set never leaves a
stale hit, near caches are flushed, every key expires, and bad input is refused naming the field —
against single-node Redis and Redis Cluster."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord_server.cache.keys import CacheKeys
from coord_server.cache.tags import FLUSH_REASON, TTL_MARGIN_MS, unpack

from ..collections.test_lists import all_keys, assert_every_key_expires
from ..conftest import CoordThread, CoordUnderTest, free_port
from ..server.test_metrics import samples, value
from . import _layout as layout
from .test_validation import call_error, details
from .test_watch_invalidations import Watch

Stub = cache_pb2_grpc.CacheServiceStub
KEYS = CacheKeys("default")
TTL = duration_pb2.Duration(seconds=60)


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield Stub(channel)


def put(stub: Stub, key: str, value: bytes, *tags: str) -> pb.SetResponse:
    response: pb.SetResponse = stub.Set(pb.SetRequest(key=key, value=value, ttl=TTL, tags=list(tags)))
    assert response.outcome == pb.WRITE_OUTCOME_STORED
    return response


def found(stub: Stub, key: str) -> bool:
    return bool(stub.Get(pb.GetRequest(key=key)).entry.found)


def invalidate(stub: Stub, *tags: str) -> int:
    return int(stub.InvalidateTags(pb.InvalidateTagsRequest(tags=list(tags))).tag_count)


def streamed(stub: Stub, keys: list[str]) -> list[bool]:
    """Whether each key is a hit, read over one GetStream."""
    requests = [pb.GetStreamRequest(request_id=i, get=pb.GetRequest(key=k)) for i, k in enumerate(keys)]
    answers = {a.request_id: a.get.entry.found for a in stub.GetStream(iter(requests))}
    return [answers[i] for i in range(len(keys))]


def other_server(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread], **settings: Any
) -> CoordThread:
    return start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", **settings)


# -- what InvalidateTags does ------------------------------------------------------------------------


def test_invalidated_tags_make_their_entries_misses_on_every_read_path(stub: Stub) -> None:
    put(stub, "user:1", b"alice", "users", "user:1")
    put(stub, "user:2", b"bob", "users", "user:2")
    put(stub, "post:1", b"hello", "posts", "user:1")
    put(stub, "plain", b"untagged")
    keys = ["user:1", "user:2", "post:1", "plain"]
    assert streamed(stub, keys) == [True] * 4

    assert invalidate(stub, "users") == 1
    expected = [False, False, True, True]  # post:1 does not carry "users"; plain carries nothing
    assert [found(stub, k) for k in keys] == expected
    assert [e.found for e in stub.BatchGet(pb.BatchGetRequest(keys=keys)).entries] == expected
    assert streamed(stub, keys) == expected
    # The entry stays in Redis (invalidation is O(1) per tag): it only reads as a miss.
    with_entries = stub.BatchGet(pb.BatchGetRequest(keys=["post:1", "user:1", "post:1"])).entries
    assert [(e.key, e.found) for e in with_entries] == [("post:1", True), ("user:1", False), ("post:1", True)]

    # Any one of an entry's tags is enough; duplicates count once.
    assert invalidate(stub, "user:1", "user:1", "nobody") == 2
    assert [found(stub, k) for k in keys] == [False, False, False, True]


def test_a_write_after_the_invalidation_is_a_hit(stub: Stub) -> None:
    put(stub, "k", b"old", "t")
    invalidate(stub, "t")
    assert not found(stub, "k")
    again = put(stub, "k", b"new", "t")
    entry = stub.Get(pb.GetRequest(key="k")).entry
    assert entry.found and entry.value == b"new" and entry.version == again.version
    # A tag invalidated twice moves on each time.
    invalidate(stub, "t")
    assert not found(stub, "k")


def test_a_write_replaces_the_entrys_tags(coord: CoordUnderTest, stub: Stub) -> None:
    put(stub, "k", b"1", "a")
    put(stub, "k", b"2", "b")  # now tagged b only
    invalidate(stub, "a")
    assert found(stub, "k")
    invalidate(stub, "b")
    assert not found(stub, "k")
    put(stub, "k", b"3")  # untagged now: no tag field left behind
    invalidate(stub, "a", "b")
    assert found(stub, "k")
    with coord.redis() as r:
        stored = layout.read(r, KEYS.entry("k"))
        assert stored is not None and stored.tags is None


def test_a_deleted_entry_leaves_no_tags_to_a_recreated_one(stub: Stub) -> None:
    put(stub, "n", b"1", "a")
    stub.Delete(pb.DeleteRequest(keys=["n"]))
    # Increment re-creates the key from its tombstone (version history, fences): not its tags.
    assert stub.Increment(pb.IncrementRequest(key="n", delta=5, ttl=TTL)).created
    invalidate(stub, "a")
    entry = stub.Get(pb.GetRequest(key="n")).entry
    assert entry.found and entry.value == b"5"


def test_batch_set_tags_each_item(stub: Stub) -> None:
    requests = [
        pb.SetRequest(key="a", value=b"1", ttl=TTL, tags=["x"]),
        pb.SetRequest(key="b", value=b"2", ttl=TTL, tags=["y", "x"]),
        pb.SetRequest(key="c", value=b"3", ttl=TTL),
    ]
    outcomes = [r.outcome for r in stub.BatchSet(pb.BatchSetRequest(requests=requests)).responses]
    assert outcomes == [pb.WRITE_OUTCOME_STORED] * 3
    invalidate(stub, "y")
    assert [found(stub, k) for k in "abc"] == [True, False, True]


def test_tags_with_braces_and_odd_characters_are_their_own(stub: Stub) -> None:
    odd = ["{x}", "%7B", "a b", "ünï", "}"]
    for i, tag in enumerate(odd):
        put(stub, f"k{i}", b"v", tag)
    invalidate(stub, "{x}", "}")
    assert [found(stub, f"k{i}") for i in range(len(odd))] == [False, True, True, True, False]


def test_a_missing_tag_key_makes_a_miss_not_a_stale_hit(coord: CoordUnderTest, stub: Stub) -> None:
    put(stub, "k", b"v", "t")
    with coord.redis() as r:
        assert r.delete(KEYS.tag("t")) == 1  # as if it had expired or been evicted
    assert not found(stub, "k")
    put(stub, "k", b"v2", "t")  # a new generation, from the clock
    assert found(stub, "k")


def test_invalidating_an_unused_tag_writes_nothing(coord: CoordUnderTest, stub: Stub) -> None:
    assert invalidate(stub, "never", "used") == 2
    assert all_keys(coord) == []


# -- GetOrLease ---------------------------------------------------------------------------------------


def test_get_or_lease_takes_the_lease_for_an_invalidated_entry(stub: Stub) -> None:
    put(stub, "k", b"old", "t")
    request = pb.GetOrLeaseRequest(key="k", lease_ttl=duration_pb2.Duration(seconds=30))
    hit = stub.GetOrLease(request)
    assert hit.entry.found and hit.entry.value == b"old" and not hit.lease_token
    invalidate(stub, "t")
    leased = stub.GetOrLease(request)
    assert not leased.entry.found and leased.lease_token
    # The stale entry is still there; another caller neither sees it nor gets a second lease.
    other = stub.GetOrLease(request)
    assert not other.entry.found and not other.lease_token
    fill = pb.SetRequest(key="k", value=b"new", ttl=TTL, tags=["t"], lease_token=leased.lease_token)
    assert stub.Set(fill).outcome == pb.WRITE_OUTCOME_STORED
    after = stub.GetOrLease(request)
    assert after.entry.found and after.entry.value == b"new"


# -- across servers, near caches ----------------------------------------------------------------------


def test_an_invalidation_through_one_server_holds_on_every_server(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    second = other_server(coord, start_coord)
    with grpc.insecure_channel(second.target) as channel:
        far = Stub(channel)
        put(stub, "a", b"1", "t")
        put(far, "b", b"2", "t")
        assert found(far, "a") and found(stub, "b")
        assert invalidate(far, "t") == 1
        assert not any(found(s, k) for s in (stub, far) for k in "ab")


def test_near_caches_watching_any_server_are_flushed(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    second = other_server(coord, start_coord)
    watch = Watch(stub, prefixes=[""])
    try:
        watch.ready()
        with grpc.insecure_channel(second.target) as channel:
            invalidate(Stub(channel), "t")
        message = watch.next()
        assert message.WhichOneof("kind") == "flush" and message.sequence == 2
        assert message.flush.reason == FLUSH_REASON
    finally:
        watch.cancel()


# -- a Set racing InvalidateTags ----------------------------------------------------------------------


def test_a_set_racing_an_invalidation_is_never_a_stale_hit(coord: CoordUnderTest, stub: Stub) -> None:
    """Writers Set fresh keys (each once) tagged "t" while the test invalidates "t" again and again.
    Once an InvalidateTags has returned, every key whose Set returned before it started reads as a
    miss; a key whose Set overlapped it is a hit only if it stored the new generation."""
    done: list[str] = []  # keys whose Set returned, in order
    lock = threading.Lock()
    stop = threading.Event()

    def writer(name: str) -> None:
        with grpc.insecure_channel(coord.target) as channel:
            mine = Stub(channel)
            n = 0
            while not stop.is_set():
                key = f"{name}:{n}"
                put(mine, key, b"v", "t")
                with lock:
                    done.append(key)
                n += 1

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(25):
            with lock:
                before = list(done)
            invalidate(stub, "t")
            with lock:
                overlapped = done[len(before) :]
            if before:
                entries = stub.BatchGet(pb.BatchGetRequest(keys=before)).entries
                assert not any(e.found for e in entries), "a Set made before the invalidation is a hit"
            with coord.redis() as r:
                current = int(r.get(KEYS.tag("t")))  # only this test invalidates: it stays until the next
                for key in overlapped:
                    entry = layout.read(r, KEYS.entry(key))
                    assert entry is not None and entry.tags is not None
                    stored = dict(unpack(entry.tags))["t"]
                    # The Set read the generation before the invalidation (a miss) or after it (a hit).
                    assert found(stub, key) == (stored == current), key
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert done and not any(t.is_alive() for t in threads)
    # Writes go on after the last invalidation: the latest ones are hits (nothing sticks as a miss).
    last = put(stub, "after", b"v", "t")
    assert stub.Get(pb.GetRequest(key="after")).entry.version == last.version


# -- TTLs ----------------------------------------------------------------------------------------------


def test_every_key_expires_and_a_tag_outlives_its_entries(coord: CoordUnderTest, stub: Stub) -> None:
    long = duration_pb2.Duration(seconds=round(coord.settings.max_ttl))
    stub.Set(pb.SetRequest(key="k", value=b"v", ttl=long, tags=["t", "u"]))
    put(stub, "j", b"v", "t")
    invalidate(stub, "t")
    put(stub, "i", b"v", "t")
    assert_every_key_expires(coord)
    with coord.redis() as r:
        assert sorted(all_keys(coord)) == sorted(
            k.encode()
            for k in (KEYS.entry("k"), KEYS.entry("j"), KEYS.entry("i"), KEYS.tag("t"), KEYS.tag("u"))
        )
        entry_ms = r.pttl(KEYS.entry("k"))
        for tag in ("t", "u"):
            tag_ms = r.pttl(KEYS.tag(tag))
            assert tag_ms > entry_ms
            assert tag_ms > round(coord.settings.max_ttl * 1000) + TTL_MARGIN_MS - 60_000


# -- cost: untagged reads and writes run no tag script ------------------------------------------------


def test_untagged_calls_cost_no_tag_script(
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
        s.BatchGet(pb.BatchGetRequest(keys=["plain", "missing"]))
        assert runs("tag_generation") == runs("tag_check") == 0
        put(s, "tagged", b"v", "a", "b")
        assert runs("tag_generation") == 2
        assert found(s, "tagged")
        assert runs("tag_check") == 2


# -- bad input -----------------------------------------------------------------------------------------

BAD = [
    ("no tags", invalidate, "tags", "INVALID_FIELD"),
    (
        "too many tags to invalidate",
        lambda s: invalidate(s, *(f"t{i}" for i in range(1001))),
        "tags",
        "BATCH_TOO_LARGE",
    ),
    ("empty tag to invalidate", lambda s: invalidate(s, "ok", ""), "tags[1]", "INVALID_FIELD"),
    ("newline in a tag", lambda s: invalidate(s, "a\nb"), "tags[0]", "INVALID_FIELD"),
    (
        "too many tags on a set",
        lambda s: put(s, "k", b"v", *(f"t{i}" for i in range(9))),
        "tags",
        "BATCH_TOO_LARGE",
    ),
    ("empty tag on a set", lambda s: put(s, "k", b"v", "a", ""), "tags[1]", "INVALID_FIELD"),
    ("tag too long on a set", lambda s: put(s, "k", b"v", "t" * 1025), "tags[0]", "KEY_TOO_LONG"),
    (
        "bad tag in a batch",
        lambda s: s.BatchSet(
            pb.BatchSetRequest(requests=[pb.SetRequest(key="k", value=b"v", tags=["ok", "x\r"])])
        ),
        "requests[0].tags[1]",
        "INVALID_FIELD",
    ),
]


@pytest.mark.parametrize(("name", "call", "field", "reason"), BAD, ids=[c[0] for c in BAD])
def test_bad_tags_are_refused_naming_the_field(
    coord: CoordUnderTest, stub: Stub, name: str, call: Callable[[Stub], Any], field: str, reason: str
) -> None:
    error = call_error(lambda: call(stub))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
    info, violations, _ = details(error)
    assert info.reason == reason and info.metadata["field"] == field
    assert [v[0] for v in violations] == [field]
    assert all_keys(coord) == []  # nothing was written


def test_eight_tags_are_allowed_and_the_limit_is_a_setting(
    coord: CoordUnderTest, stub: Stub, start_coord: Callable[..., CoordThread]
) -> None:
    put(stub, "k", b"v", *(f"t{i}" for i in range(8)))
    invalidate(stub, "t7")
    assert not found(stub, "k")
    small = other_server(coord, start_coord, cache_max_tags=1)
    with grpc.insecure_channel(small.target) as channel:
        error = call_error(lambda: put(Stub(channel), "k", b"v", "a", "b"))
    info, _, _ = details(error)
    assert (info.reason, info.metadata["limit"], info.metadata["actual"]) == ("BATCH_TOO_LARGE", "1", "2")
