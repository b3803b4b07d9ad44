"""SetStream: each message is applied and answered exactly as Set would (conditions, versions, the
invalidation a watcher gets), a bad message gets its own error answer while the stream goes on, and
the stream's deadline bounds it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord.common.v1 import errors_pb2

from ..conftest import CoordUnderTest
from .test_watch_invalidations import Watch

TTL = duration_pb2.Duration(seconds=60)


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[cache_pb2_grpc.CacheServiceStub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield cache_pb2_grpc.CacheServiceStub(channel)


def _violations(error: errors_pb2.StreamError) -> tuple[str, list[str]]:
    info = error_details_pb2.ErrorInfo()
    violations = error_details_pb2.BadRequest()
    for detail in error.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(violations.DESCRIPTOR):
            detail.Unpack(violations)
    return info.reason, [v.field for v in violations.field_violations]


def test_writes_conditions_and_errors_each_get_their_answer(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    before = stub.Set(pb.SetRequest(key="taken", value=b"old", ttl=TTL))
    requests = [
        pb.SetStreamRequest(request_id=1, set=pb.SetRequest(key="s1", value=b"one", ttl=TTL)),
        pb.SetStreamRequest(
            request_id=2, set=pb.SetRequest(key="taken", value=b"new", ttl=TTL, if_absent=pb.IfAbsent())
        ),
        pb.SetStreamRequest(request_id=3, set=pb.SetRequest(key="", value=b"x", ttl=TTL)),
        pb.SetStreamRequest(
            request_id=4, set=pb.SetRequest(key="s4", value=b"x", ttl=duration_pb2.Duration(seconds=-1))
        ),
        pb.SetStreamRequest(
            request_id=5, set=pb.SetRequest(key="s5", value=b"five", ttl=TTL, if_present=pb.IfPresent())
        ),
        pb.SetStreamRequest(request_id=6, set=pb.SetRequest(key="s6", value=b"six", ttl=TTL)),
    ]
    by_id = {r.request_id: r for r in stub.SetStream(iter(requests), timeout=10)}
    assert sorted(by_id) == [1, 2, 3, 4, 5, 6]

    for request_id, key, value in ((1, "s1", b"one"), (6, "s6", b"six")):
        answer = by_id[request_id]
        assert answer.WhichOneof("result") == "set"
        assert answer.set.outcome == pb.WRITE_OUTCOME_STORED and answer.set.version > 0
        entry = stub.Get(pb.GetRequest(key=key)).entry
        assert entry.value == value and entry.version == answer.set.version
        assert entry.expire_time == answer.set.expire_time
    # A condition that does not hold is an answer, as from Set, and nothing is written.
    assert by_id[2].WhichOneof("result") == "set"
    assert by_id[2].set.outcome == pb.WRITE_OUTCOME_ALREADY_EXISTS
    kept = stub.Get(pb.GetRequest(key="taken")).entry
    assert kept.value == b"old" and kept.version == before.version
    assert by_id[5].WhichOneof("result") == "set" and by_id[5].set.outcome == pb.WRITE_OUTCOME_NOT_FOUND
    assert not stub.Get(pb.GetRequest(key="s5")).entry.found
    # Bad requests: the error Set would fail with, naming the field as Set names it.
    for request_id, field, reason in ((3, "key", ""), (4, "ttl", "TTL_OUT_OF_RANGE")):
        bad = by_id[request_id]
        assert bad.WhichOneof("result") == "error"
        assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        got_reason, fields = _violations(bad.error)
        assert fields == [field] and got_reason
        if reason:
            assert got_reason == reason
    assert not stub.Get(pb.GetRequest(key="s4")).entry.found


def test_a_write_reaches_a_watcher_with_its_entry(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    watch = Watch(stub, prefixes=["w:"], values=True)
    try:
        assert watch.next().HasField("ready")
        requests = [pb.SetStreamRequest(request_id=1, set=pb.SetRequest(key="w:1", value=b"pushed", ttl=TTL))]
        (answer,) = list(stub.SetStream(iter(requests), timeout=10))
        message = watch.next()
        assert message.invalidation.key == "w:1"
        assert message.invalidation.version == answer.set.version
        assert message.invalidation.entry.value == b"pushed"
    finally:
        watch.call.cancel()


def test_many_writes_in_flight_each_applied_once(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    # More requests than the server keeps in flight at once: all applied, each answered once.
    count = 300
    requests = [
        pb.SetStreamRequest(request_id=i, set=pb.SetRequest(key=f"many:{i}", value=b"%d" % i, ttl=TTL))
        for i in range(count)
    ]
    answers = list(stub.SetStream(iter(requests), timeout=30))
    assert sorted(a.request_id for a in answers) == list(range(count))
    assert all(a.set.outcome == pb.WRITE_OUTCOME_STORED for a in answers)
    got = stub.BatchGet(pb.BatchGetRequest(keys=[f"many:{i}" for i in range(count)]))
    assert [e.value for e in got.entries] == [b"%d" % i for i in range(count)]


def test_stream_deadline_bounds_the_stream(stub: cache_pb2_grpc.CacheServiceStub) -> None:
    release = threading.Event()

    def requests() -> Iterator[pb.SetStreamRequest]:
        yield pb.SetStreamRequest(request_id=1, set=pb.SetRequest(key="d", value=b"v", ttl=TTL))
        release.wait(5)  # the caller keeps its side open past the deadline

    replies = stub.SetStream(requests(), timeout=0.5)
    first = next(replies)
    assert first.request_id == 1 and first.set.outcome == pb.WRITE_OUTCOME_STORED
    with pytest.raises(grpc.RpcError) as caught:
        next(replies)
    release.set()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
