"""Requests that cannot be decoded (garbage bytes, invalid UTF-8 in a string field) are the caller's
mistake: INVALID_ARGUMENT with reason MALFORMED_REQUEST and a short message, on every method of every
service (unary, server-streaming and bidirectional alike), never an UNKNOWN or INTERNAL that quotes the
decoder's exception, never an ERROR in the server log, and the server goes on serving."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.collections.v1 import list_pb2, map_pb2, set_pb2, sorted_set_pb2
from coord.common.v1 import errors_pb2
from coord.events.v1 import events_pb2
from coord.lock.v1 import lock_pb2, lock_pb2_grpc
from coord.ratelimit.v1 import ratelimit_pb2
from coord.session.v1 import session_pb2
from coord_server._decoding import REASON
from coord_server.reflection import v1_file

from ..conftest import CoordThread, CoordUnderTest, RedisProcess
from ..security.authkit import Refusal, api_key, bearer, new_key, refusal, write_auth

SERVICES: list[ServiceDescriptor] = [
    cache_pb2.DESCRIPTOR.services_by_name["CacheService"],
    events_pb2.DESCRIPTOR.services_by_name["EventsService"],
    lock_pb2.DESCRIPTOR.services_by_name["LockService"],
    ratelimit_pb2.DESCRIPTOR.services_by_name["RateLimitService"],
    session_pb2.DESCRIPTOR.services_by_name["SessionService"],
    map_pb2.DESCRIPTOR.services_by_name["MapService"],
    list_pb2.DESCRIPTOR.services_by_name["ListService"],
    set_pb2.DESCRIPTOR.services_by_name["SetService"],
    sorted_set_pb2.DESCRIPTOR.services_by_name["SortedSetService"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
    v1_file().services_by_name["ServerReflection"],  # grpc.reflection.v1
]
METHODS = [(s, m) for s in SERVICES for m in s.methods]

# Not a protobuf message at all: a field tag whose varint never ends.
GARBAGE = b"\xff\xff\xff\xff"
# Field 1 (a string in every request below) holding the bytes C3 28: not UTF-8.
BAD_UTF8 = b"\x0a\x02\xc3\x28"

Metadata = tuple[tuple[str, str | bytes], ...]


def call_raw(
    channel: grpc.Channel,
    service: ServiceDescriptor,
    method: MethodDescriptor,
    messages: list[bytes],
    metadata: Metadata | None = None,
) -> list[bytes]:
    """Call ``method`` sending ``messages`` as they are (no serializer); its raw answers."""
    path = f"/{service.full_name}/{method.name}"
    kind = (method.client_streaming, method.server_streaming)
    options: dict[str, Any] = {"timeout": 20, "metadata": metadata}
    if kind == (False, False):
        return [channel.unary_unary(path)(messages[0], **options)]
    if kind == (False, True):
        return list(channel.unary_stream(path)(messages[0], **options))
    if kind == (True, False):
        return [channel.stream_unary(path)(iter(messages), **options)]
    return list(channel.stream_stream(path)(iter(messages), **options))


def refused_as_malformed(
    channel: grpc.Channel,
    service: ServiceDescriptor,
    method: MethodDescriptor,
    messages: list[bytes],
    metadata: Metadata | None = None,
) -> Refusal:
    with pytest.raises(grpc.RpcError) as raised:
        call_raw(channel, service, method, messages, metadata)
    error: Any = raised.value
    details = error.details() or ""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.full_name, error.code(), details)
    assert "DecodeError" not in details and "Unexpected" not in details and "Traceback" not in details
    assert len(details) < 200, details
    said = refusal(error)
    assert said.reason == "MALFORMED_REQUEST"
    assert said.metadata == {"message_type": method.input_type.full_name}
    return said


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def still_serving(channel: grpc.Channel) -> None:
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    stub.Set(cache_pb2.SetRequest(key="after", value=b"ok"), timeout=10)
    assert stub.Get(cache_pb2.GetRequest(key="after"), timeout=10).entry.value == b"ok"


@pytest.fixture
def channel(coord_single: CoordUnderTest) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(coord_single.target) as channel:
        yield channel


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[m.full_name for _, m in METHODS])
def test_garbage_is_invalid_argument_on_every_method(
    channel: grpc.Channel,
    service: ServiceDescriptor,
    method: MethodDescriptor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    said = refused_as_malformed(channel, service, method, [GARBAGE])
    assert said.message.startswith("malformed request")
    no_errors_logged(caplog)
    still_serving(channel)


def _method(service: str, name: str) -> tuple[ServiceDescriptor, MethodDescriptor]:
    found = next(s for s in SERVICES if s.name == service)
    return found, found.methods_by_name[name]


# Methods whose request has a string as field 1, one of each kind.
BAD_UTF8_CALLS = {
    "unary Get": (_method("CacheService", "Get"), [BAD_UTF8]),
    "unary Create": (_method("SessionService", "Create"), [BAD_UTF8]),
    "server-streaming Subscribe": (_method("EventsService", "Subscribe"), [BAD_UTF8]),
    # GetStreamRequest.get (2) is a GetRequest whose key (1) is not UTF-8.
    "bidi GetStream": (_method("CacheService", "GetStream"), [b"\x12\x04" + BAD_UTF8]),
    # CheckStreamRequest.check (2) is a CheckRequest whose scope (5) is not UTF-8.
    "bidi CheckStream": (_method("RateLimitService", "CheckStream"), [b"\x12\x04\x2a\x02\xc3\x28"]),
}


@pytest.mark.parametrize("case", list(BAD_UTF8_CALLS), ids=list(BAD_UTF8_CALLS))
def test_invalid_utf8_in_a_string_field_is_invalid_argument(
    channel: grpc.Channel, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    (service, method), messages = BAD_UTF8_CALLS[case]
    said = refused_as_malformed(channel, service, method, messages)
    assert "UTF-8" in said.message
    no_errors_logged(caplog)
    still_serving(channel)


HOLD = lock_pb2.HoldRequest(
    acquire=lock_pb2.AcquireRequest(
        name="garbled", mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=duration_pb2.Duration(seconds=300)
    )
).SerializeToString()
CONSUME = events_pb2.ConsumeRequest(
    start=events_pb2.ConsumeStart(topic="garbled", group="g", group_start=events_pb2.START_POSITION_LATEST)
).SerializeToString()
GET = cache_pb2.GetStreamRequest(request_id=1, get=cache_pb2.GetRequest(key="k")).SerializeToString()
CHECK_BATCH = ratelimit_pb2.CheckBatchStreamRequest(batch_id=1).SerializeToString()

# A valid first message, answered (Hold: acquired, Consume: started...), then garbage.
LATER_CALLS = {
    "Hold": (_method("LockService", "Hold"), HOLD),
    "Consume": (_method("EventsService", "Consume"), CONSUME),
    "GetStream": (_method("CacheService", "GetStream"), GET),
    "CheckBatchStream": (_method("RateLimitService", "CheckBatchStream"), CHECK_BATCH),
}


@pytest.mark.parametrize("case", list(LATER_CALLS), ids=list(LATER_CALLS))
def test_a_garbled_message_later_in_a_stream_ends_it_with_invalid_argument(
    coord_single: CoordUnderTest, channel: grpc.Channel, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    (service, method), first = LATER_CALLS[case]
    answered = threading.Event()

    def requests() -> Iterator[bytes]:
        yield first
        answered.wait(20)  # the stream is under way (granted, started...) when the garbage comes
        yield GARBAGE

    replies = channel.stream_stream(f"/{service.full_name}/{method.name}")(requests(), timeout=20)
    next(replies)
    answered.set()
    with pytest.raises(grpc.RpcError) as raised:
        list(replies)
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert refusal(error).reason == "MALFORMED_REQUEST"
    no_errors_logged(caplog)
    still_serving(channel)
    if case == "Hold":
        # Ending the stream released the grant at once (not at its 300 s TTL).
        stub = channel.unary_unary(
            "/coord.lock.v1.LockService/Describe",
            request_serializer=lock_pb2.DescribeRequest.SerializeToString,
            response_deserializer=lock_pb2.DescribeResponse.FromString,
        )
        assert stub(lock_pb2.DescribeRequest(name="garbled"), timeout=10).holder_count == 0


def test_with_authentication_the_caller_is_checked_first(
    redis_single: RedisProcess, start_coord: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The auth interceptor and the decoder work together: a caller without a credential is refused
    as unauthenticated whatever it sent; an authenticated one learns that its request was malformed."""
    key, digest = new_key()
    path = write_auth(tmp_path / "auth.yaml", api_keys=[api_key("all", digest, "t")])
    server: CoordThread = start_coord(redis_single.url, auth_file=str(path))
    with grpc.insecure_channel(server.target) as channel:
        for service, method in [
            _method("CacheService", "Get"),
            _method("EventsService", "Subscribe"),
            _method("CacheService", "GetStream"),
            _method("LockService", "Hold"),
        ]:
            with pytest.raises(grpc.RpcError) as raised:
                call_raw(channel, service, method, [GARBAGE])
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            refused_as_malformed(channel, service, method, [GARBAGE], bearer(key))
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        stub.Set(cache_pb2.SetRequest(key="k", value=b"v"), metadata=bearer(key), timeout=10)
    no_errors_logged(caplog)


def test_the_reason_is_in_the_catalogue() -> None:
    assert errors_pb2.ErrorReason.Value(REASON) == 24


def test_a_garbled_message_while_a_hold_waits_ends_it_and_leaves_the_queue(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    stub = lock_pb2_grpc.LockServiceStub(channel)
    taken = stub.Acquire(
        lock_pb2.AcquireRequest(
            name="busy", mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=duration_pb2.Duration(seconds=300)
        ),
        timeout=10,
    )
    assert taken.acquired
    waiting = lock_pb2.HoldRequest(
        acquire=lock_pb2.AcquireRequest(
            name="busy",
            mode=lock_pb2.LOCK_MODE_EXCLUSIVE,
            ttl=duration_pb2.Duration(seconds=300),
            wait=duration_pb2.Duration(seconds=60),
        )
    ).SerializeToString()
    queued = threading.Event()

    def requests() -> Iterator[bytes]:
        yield waiting
        queued.wait(20)
        yield GARBAGE

    replies = channel.stream_stream("/coord.lock.v1.LockService/Hold")(requests(), timeout=20)
    assert lock_pb2.HoldResponse.FromString(next(replies)).WhichOneof("kind") == "queued"
    queued.set()
    with pytest.raises(grpc.RpcError) as raised:
        list(replies)
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refusal(error).reason == "MALFORMED_REQUEST"
    described = stub.Describe(lock_pb2.DescribeRequest(name="busy"), timeout=10)
    assert (described.holder_count, described.queue_length) == (1, 0)
    no_errors_logged(caplog)
