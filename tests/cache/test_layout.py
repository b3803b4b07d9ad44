"""How a cache entry is laid out in Redis: one string (a packed header, then the value) that costs
little more than a plain SET PX of the value, and entries of the former hash layout, which every RPC
still reads (and a write turns into a string) until they expire.

Memory is measured as the bench does (used_memory growth over many entries, without the clients'
buffers and the script cache), in bytes, on a single node. The old layout is written directly with
redis-py, as the former set.lua and delete.lua left it (tests/cache/_layout.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
import redis
from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord_server.cache.keys import CacheKeys
from coord_server.cache.tags import pack

from ..conftest import CoordUnderTest
from . import _layout as layout
from .test_validation import call_error

Stub = cache_pb2_grpc.CacheServiceStub
KEYS = CacheKeys("default")
STORED, FENCED = pb.WRITE_OUTCOME_STORED, pb.WRITE_OUTCOME_FENCED
OLD_VERSION = 1_900_000_000_000_000  # above any clock-made version, so a write must continue from it
COUNT = 10_000  # entries per side of a memory measurement (as the bench)


def ttl(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield Stub(channel)


def now_ms(r: redis.Redis) -> int:
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000


# -- the string layout --------------------------------------------------------------------------------


def test_an_entry_is_one_string_with_its_header(coord: CoordUnderTest, stub: Stub) -> None:
    written = stub.Set(pb.SetRequest(key="k", value=b"hello", ttl=ttl(60)))
    with coord.redis() as r:
        assert r.type(KEYS.entry("k")) == b"string"
        stored = layout.read(r, KEYS.entry("k"))
        assert r.pexpiretime(KEYS.entry("k")) == written.expire_time.ToMilliseconds()
    assert stored is not None
    assert (stored.flags, stored.header_len, stored.value) == (0, 14, b"hello")
    assert stored.version == written.version
    assert stored.expire_ms == written.expire_time.ToMilliseconds()


def test_fences_and_tags_live_in_the_header_only_when_used(coord: CoordUnderTest, stub: Stub) -> None:
    fence = pb.Fence(lock_name="L", fencing_token=7)
    stub.Set(pb.SetRequest(key="k", value=b"v", fence=fence, tags=["t"]))
    with coord.redis() as r:
        stored = layout.read(r, KEYS.entry("k"))
        assert stored is not None and stored.fences == {"L": 7} and stored.tags is not None
        assert stored.flags == layout.TAGS | layout.FENCES and stored.value == b"v"
        stub.Set(pb.SetRequest(key="k", value=b"w"))  # untagged: the tags go, the fence stays
        stored = layout.read(r, KEYS.entry("k"))
        assert stored is not None and stored.fences == {"L": 7} and stored.tags is None
        stub.Delete(pb.DeleteRequest(keys=["k"]))
        assert not r.exists(KEYS.entry("k"))
        tomb = layout.read(r, KEYS.both("k")[1])
        assert tomb is not None and tomb.fences == {"L": 7} and tomb.value == b"" and tomb.tags is None
        assert 0 < r.pttl(KEYS.both("k")[1]) <= coord.settings.tombstone_ttl * 1000


def _data_bytes(r: redis.Redis) -> int:
    """used_memory without the clients' buffers and the script cache (as bench/cache.py counts)."""
    info = r.info("memory")
    return int(info["used_memory"]) - int(info["mem_clients_normal"]) - int(info["used_memory_scripts"])


def _settle(r: redis.Redis, key: str) -> None:
    """Every lookup moves Redis' incremental rehash of its key tables on by a step: enough of them
    finish it, so the old table of a grown dict is not counted."""
    pipe = r.pipeline(transaction=False)
    for _ in range(20_000):
        pipe.exists(key)
    pipe.execute()


def _per_entry(coord: CoordUnderTest, write: Callable[[redis.Redis], str]) -> float:
    """Bytes per entry that ``write`` adds to an empty Redis (it returns one key it wrote)."""
    with coord.redis() as r:
        assert isinstance(r, redis.Redis)
        r.flushall()
        before = _data_bytes(r)
        first = write(r)
        _settle(r, first)
        return (_data_bytes(r) - before) / COUNT


@pytest.mark.parametrize(("size", "goal"), [(100, 1.25), (4096, 1.05)])
def test_an_entry_costs_little_more_than_a_plain_set(
    coord_single: CoordUnderTest, size: int, goal: float
) -> None:
    keys = [f"mem:{i:06d}" for i in range(COUNT)]
    value = b"v" * size

    def through_coord(_: redis.Redis) -> str:
        with grpc.insecure_channel(coord_single.target) as channel:
            stub = Stub(channel)
            for i in range(0, COUNT, 100):
                batch = [pb.SetRequest(key=k, value=value, ttl=ttl(600)) for k in keys[i : i + 100]]
                replies = stub.BatchSet(pb.BatchSetRequest(requests=batch)).responses
                assert all(reply.outcome == STORED for reply in replies)
        return KEYS.entry(keys[0])

    def plain(r: redis.Redis) -> str:
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, value, px=600_000)
        pipe.execute()
        return keys[0]

    # The first writes of a kind allocate what Redis keeps for good (a few hundred KiB for the first
    # scripts a server runs, not per entry): each side is measured once that is done.
    coord, baseline = [
        [_per_entry(coord_single, write) for _ in range(2)][1] for write in (through_coord, plain)
    ]
    assert coord <= goal * baseline, (coord, baseline)


# -- entries of the old (hash) layout ---------------------------------------------------------------


def old_entry(
    coord: CoordUnderTest, key: str, value: bytes, *, tags: str = "", fences: dict[str, int] | None = None
) -> int:
    """An entry as the former set.lua wrote it, expiring in a minute; returns its expiry (ms)."""
    with coord.redis() as r:
        expire_ms = now_ms(r) + 60_000
        layout.write_old(
            r,
            KEYS.entry(key),
            value=value,
            version=OLD_VERSION,
            expire_ms=expire_ms,
            tags=tags,
            fences=fences,
        )
    return expire_ms


def is_string(coord: CoordUnderTest, key: str) -> bool:
    with coord.redis() as r:
        return r.type(KEYS.entry(key)) == b"string"


def test_reads_of_an_old_entry(coord: CoordUnderTest, stub: Stub) -> None:
    expire_ms = old_entry(coord, "old", b"value")
    entry = stub.Get(pb.GetRequest(key="old")).entry
    assert entry.found and entry.value == b"value" and entry.version == OLD_VERSION
    assert entry.expire_time.ToMilliseconds() == expire_ms
    entries = stub.BatchGet(pb.BatchGetRequest(keys=["old", "none", "old"])).entries
    assert [(e.found, e.value) for e in entries] == [(True, b"value"), (False, b""), (True, b"value")]
    requests = iter([pb.GetStreamRequest(request_id=1, get=pb.GetRequest(key="old"))])
    answers = list(stub.GetStream(requests, timeout=10))
    assert answers[0].get.entry.value == b"value"
    hit = stub.GetOrLease(pb.GetOrLeaseRequest(key="old", lease_ttl=ttl(10)))
    assert hit.entry.found and hit.entry.version == OLD_VERSION and not hit.lease_token
    assert not is_string(coord, "old")  # reads leave it as it is


def test_a_batch_bounds_an_old_entry_by_its_size(coord: CoordUnderTest, stub: Stub) -> None:
    old_entry(coord, "big", b"x" * (3 << 20))
    old_entry(coord, "big2", b"y" * (3 << 20))
    err = call_error(lambda: stub.BatchGet(pb.BatchGetRequest(keys=["big", "big2"])))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_writes_turn_an_old_entry_into_a_string_and_continue_its_versions(
    coord: CoordUnderTest, stub: Stub
) -> None:
    old_entry(coord, "a", b"1")
    assert stub.Set(pb.SetRequest(key="a", value=b"x", if_absent=pb.IfAbsent())).version == OLD_VERSION
    written = stub.Set(pb.SetRequest(key="a", value=b"2", if_version=OLD_VERSION))
    assert written.outcome == STORED and written.version == OLD_VERSION + 1
    assert is_string(coord, "a") and stub.Get(pb.GetRequest(key="a")).entry.value == b"2"

    expire_ms = old_entry(coord, "n", b"41")
    counted = stub.Increment(pb.IncrementRequest(key="n", delta=1, ttl=ttl(1)))
    assert (counted.value, counted.created, counted.version) == (42, False, OLD_VERSION + 1)
    assert counted.expire_time.ToMilliseconds() == expire_ms  # an existing counter keeps its expiry
    assert is_string(coord, "n") and stub.Get(pb.GetRequest(key="n")).entry.value == b"42"

    old_entry(coord, "text", b"abc")
    err = call_error(lambda: stub.Increment(pb.IncrementRequest(key="text", delta=1)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and not is_string(coord, "text")

    old_entry(coord, "t", b"v")
    touched = stub.Touch(pb.TouchRequest(key="t", ttl=ttl(500)))
    entry = stub.Get(pb.GetRequest(key="t")).entry
    assert touched.found and is_string(coord, "t")
    assert (entry.value, entry.version) == (b"v", OLD_VERSION)
    assert entry.expire_time.ToMilliseconds() == touched.expire_time.ToMilliseconds()
    with coord.redis() as r:
        assert r.pexpiretime(KEYS.entry("t")) == touched.expire_time.ToMilliseconds()


def test_an_old_entrys_fences_hold_and_carry_over(coord: CoordUnderTest, stub: Stub) -> None:
    old_entry(coord, "f", b"v", fences={"L": 100, "M": 5})

    def fenced(lock: str, token: int) -> pb.SetResponse:
        fence = pb.Fence(lock_name=lock, fencing_token=token)
        response: pb.SetResponse = stub.Set(pb.SetRequest(key="f", value=b"w", fence=fence))
        return response

    refused = fenced("L", 99)
    assert refused.outcome == FENCED and refused.fencing_token == 100 and refused.version == OLD_VERSION
    assert not is_string(coord, "f")  # a refused write changes nothing
    assert stub.Set(pb.SetRequest(key="f", value=b"plain")).outcome == STORED  # converts, keeps fences
    with coord.redis() as r:
        stored = layout.read(r, KEYS.entry("f"))
        assert stored is not None and stored.fences == {"L": 100, "M": 5}
    assert fenced("M", 4).outcome == FENCED
    assert fenced("L", 100).outcome == STORED


def test_deleting_an_old_entry_leaves_a_tombstone_with_its_version_and_fences(
    coord: CoordUnderTest, stub: Stub
) -> None:
    old_entry(coord, "d", b"v", fences={"L": 9})
    mismatch = stub.Delete(pb.DeleteRequest(keys=["d"], if_version=OLD_VERSION + 1)).results[0]
    assert mismatch.outcome == pb.DELETE_OUTCOME_VERSION_MISMATCH and mismatch.version == OLD_VERSION
    deleted = stub.Delete(pb.DeleteRequest(keys=["d"], if_version=OLD_VERSION)).results[0]
    assert deleted.outcome == pb.DELETE_OUTCOME_DELETED and deleted.version == OLD_VERSION
    assert not stub.Get(pb.GetRequest(key="d")).entry.found
    fence = pb.Fence(lock_name="L", fencing_token=8)
    assert stub.Set(pb.SetRequest(key="d", value=b"w", fence=fence)).outcome == FENCED
    again = stub.Set(pb.SetRequest(key="d", value=b"w"))
    assert again.outcome == STORED and again.version == OLD_VERSION + 1


def test_an_old_tombstone_keeps_its_version_and_fences(coord: CoordUnderTest, stub: Stub) -> None:
    with coord.redis() as r:
        tomb = KEYS.both("g")[1]
        layout.write_old(
            r, tomb, value=None, version=OLD_VERSION, expire_ms=now_ms(r) + 60_000, fences={"L": 3}
        )
    assert not stub.Get(pb.GetRequest(key="g")).entry.found
    assert not stub.Touch(pb.TouchRequest(key="g", ttl=ttl(10))).found
    fence = pb.Fence(lock_name="L", fencing_token=2)
    assert stub.Set(pb.SetRequest(key="g", value=b"w", fence=fence)).outcome == FENCED
    counted = stub.Increment(pb.IncrementRequest(key="g", delta=3))
    assert counted.created and counted.value == 3 and counted.version == OLD_VERSION + 1
    with coord.redis() as r:
        assert not r.exists(tomb)
        stored = layout.read(r, KEYS.entry("g"))
        assert stored is not None and stored.fences == {"L": 3}


def test_an_old_tagged_entry_is_invalidated_by_its_tags(coord: CoordUnderTest, stub: Stub) -> None:
    stub.Set(pb.SetRequest(key="seed", value=b"s", tags=["team"]))  # creates the tag's generation
    with coord.redis() as r:
        generation = int(r.get(KEYS.tag("team")))
    old_entry(coord, "tagged", b"v", tags=pack([("team", generation)]))
    assert stub.Get(pb.GetRequest(key="tagged")).entry.found
    stub.InvalidateTags(pb.InvalidateTagsRequest(tags=["team"]))
    assert not stub.Get(pb.GetRequest(key="tagged")).entry.found
    assert not stub.BatchGet(pb.BatchGetRequest(keys=["tagged"])).entries[0].found
