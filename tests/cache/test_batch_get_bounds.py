"""BatchGet reads each distinct key once, and bounds its reply before it reads the values: a batch
whose reply gRPC could not send (COORD_MAX_MESSAGE_SIZE) is refused without the values leaving Redis.

What Redis did is measured on Redis itself: the scripts it ran (INFO commandstats) and the bytes it
sent to its clients (INFO stats total_net_output_bytes), summed over every node of a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import redis
from google.protobuf import duration_pb2, timestamp_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord_server.cache.servicer import _ENTRY_FRAMING
from coord_server.redis import ScriptSet

from ..conftest import CoordUnderTest, RedisClusterProcess
from .test_validation import call_error, details

LIMIT = 4 << 20  # the default COORD_MAX_MESSAGE_SIZE the test servers run with
MIB = 1 << 20


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[cache_pb2_grpc.CacheServiceStub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield cache_pb2_grpc.CacheServiceStub(channel)


def _nodes(coord: CoordUnderTest) -> list[redis.Redis]:
    backing = coord.backing
    nodes = backing.nodes if isinstance(backing, RedisClusterProcess) else [backing]
    return [node.client() for node in nodes]


class RedisCounters:
    """Scripts run and bytes sent by the Redis behind ``coord`` (every node) since :meth:`mark`.

    CONFIG RESETSTAT zeroes both counters, and INFO reports them before its own reply is sent: what is
    counted is the call under test, plus the health probe's PINGs (7 bytes each).
    """

    def __init__(self, coord: CoordUnderTest) -> None:
        self._nodes = _nodes(coord)
        source = ScriptSet("coord_server.cache")["get"].source
        for node in self._nodes:
            node.script_load(source)  # every node has get.lua cached: no NOSCRIPT round trip counted
        self.mark()

    def mark(self) -> None:
        for node in self._nodes:
            node.config_resetstat()

    def since(self) -> tuple[int, int]:
        """(scripts run, bytes sent) since the mark."""
        scripts = sent = 0
        for node in self._nodes:
            sent += int(node.info("stats")["total_net_output_bytes"])
            stats = node.info("commandstats")
            scripts += sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))
        return scripts, sent


def _set(stub: cache_pb2_grpc.CacheServiceStub, key: str, value: bytes) -> None:
    stub.Set(pb.SetRequest(key=key, value=value))


def test_duplicate_keys_are_read_once_and_answered_each_time(
    coord: CoordUnderTest, stub: cache_pb2_grpc.CacheServiceStub
) -> None:
    value = bytes(range(250)) * 16  # 4,000 bytes: 1,000 answers of it fit in one 4 MiB reply
    _set(stub, "dup", value)
    counters = RedisCounters(coord)
    entries = stub.BatchGet(pb.BatchGetRequest(keys=["dup"] * 999 + ["other"])).entries
    scripts, sent = counters.since()
    assert len(entries) == 1000
    assert all(e.key == "dup" and e.found and e.value == value for e in entries[:999])
    assert entries[999].key == "other" and not entries[999].found
    assert len({(e.version, e.expire_time.seconds) for e in entries[:999]}) == 1
    assert scripts == 2  # one read per distinct key, not 1,000
    assert len(value) <= sent < 2 * len(value)  # the value left Redis once


def test_a_reply_over_the_message_size_is_refused_before_the_values_are_read(
    coord: CoordUnderTest, stub: cache_pb2_grpc.CacheServiceStub
) -> None:
    big = b"v" * MIB
    for key in ("big", *(f"big{i}" for i in range(8))):
        _set(stub, key, big)
    counters = RedisCounters(coord)
    for keys in (["big"] * 1000, [f"big{i}" for i in range(8)]):  # 1,000 MiB and 8 MiB of values
        counters.mark()
        err = call_error(lambda keys=keys: stub.BatchGet(pb.BatchGetRequest(keys=keys)))
        scripts, sent = counters.since()
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info, violations, _ = details(err)
        assert info.reason == "VALUE_TOO_LARGE"
        assert info.metadata["field"] == "keys" and info.metadata["limit"] == str(LIMIT)
        assert int(info.metadata["actual"]) > LIMIT
        assert [field for field, _ in violations] == ["keys"]
        message = err.details() or ""
        assert f"at most {LIMIT} bytes" in message and "max message size" in message
        assert scripts == len(set(keys))  # each key asked once, for its size: no second round trip
        assert sent < 4096  # sizes only: not one of the values (1 MiB each) left Redis


def test_long_values_are_fetched_once_the_sizes_show_that_the_reply_fits(
    coord: CoordUnderTest, stub: cache_pb2_grpc.CacheServiceStub
) -> None:
    values = {f"long{i}": bytes([i]) * MIB for i in range(3)}  # each over its 1/1000 share of 4 MiB
    for key, value in values.items():
        _set(stub, key, value)
    _set(stub, "short", b"s")
    keys = [*values, "short", *(f"absent{i}" for i in range(996))]
    counters = RedisCounters(coord)
    entries = stub.BatchGet(pb.BatchGetRequest(keys=keys)).entries
    scripts, sent = counters.since()
    assert [e.key for e in entries] == keys
    assert [e.value for e in entries[:4]] == [*values.values(), b"s"]
    assert not any(e.found for e in entries[4:])
    assert scripts == len(keys) + len(values)  # sizes first, then the three long values
    assert 3 * MIB <= sent < 3 * MIB + 64 * 1024  # each long value left Redis once


def test_the_bound_is_exact_at_the_limit(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    # Four entries whose counted size is exactly the limit fit; one byte more does not.
    keys = ["e0", "e1", "e2", "e3"]
    size = LIMIT // 4 - _ENTRY_FRAMING - 2
    for key in keys:
        _set(stub, key, b"x" * size)
    entries = stub.BatchGet(pb.BatchGetRequest(keys=keys)).entries
    assert [len(e.value) for e in entries] == [size] * 4
    _set(stub, "e3", b"x" * (size + 1))
    err = call_error(lambda: stub.BatchGet(pb.BatchGetRequest(keys=keys)))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details(err)[0].metadata["actual"] == str(LIMIT + 1)


def test_entry_framing_bounds_the_largest_entry() -> None:
    # Every field at its widest: the count BatchGet makes is never below what gRPC sends.
    widest = pb.Entry(
        key="k" * 1024,
        found=True,
        value=b"v" * (16 * MIB),
        version=2**63 - 1,
        expire_time=timestamp_pb2.Timestamp(seconds=253402300799, nanos=999_999_999),
        compute_time=duration_pb2.Duration(seconds=4_294_967, nanos=295_000_000),  # 2^32 - 1 ms
    )
    reply = pb.BatchGetResponse(entries=[widest])
    assert reply.ByteSize() <= _ENTRY_FRAMING + 1024 + 16 * MIB
