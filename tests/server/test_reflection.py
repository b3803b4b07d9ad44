"""Server reflection answers under grpc.reflection.v1 (what current tools ask first) as under v1alpha:
the same services listed, files resolved by symbol, and the same rule for when it is served.

The v1 client here is a generic call of ``/grpc.reflection.v1.ServerReflection/ServerReflectionInfo``
whose messages are encoded with v1alpha's classes: the two versions' messages are the same fields
with the same numbers, so the bytes are what a v1 client sends and reads."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as pb

from ..conftest import CoordThread, CoordUnderTest, RedisProcess
from ..security.authkit import api_key, new_key, write_auth

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REFLECTION = {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
PROTOS = Path(__file__).resolve().parents[2] / "protos" / "coord"


def coord_services() -> set[str]:
    """Every service the contract defines (protos/coord/**.proto), by full name."""
    names = set()
    for path in PROTOS.rglob("*.proto"):
        text = path.read_text()
        package = re.search(r"^package ([\w.]+);", text, re.MULTILINE)
        assert package is not None, path
        names |= {f"{package.group(1)}.{s}" for s in re.findall(r"^service (\w+)", text, re.MULTILINE)}
    return names


def ask(
    channel: grpc.Channel, path: str, *requests: pb.ServerReflectionRequest
) -> list[pb.ServerReflectionResponse]:
    call = channel.stream_stream(
        path,
        request_serializer=pb.ServerReflectionRequest.SerializeToString,
        response_deserializer=pb.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=10))


def listed(channel: grpc.Channel, path: str = V1) -> set[str]:
    (answer,) = ask(channel, path, pb.ServerReflectionRequest(list_services=""))
    return {s.name for s in answer.list_services_response.service}


def file_of(channel: grpc.Channel, symbol: str) -> descriptor_pb2.FileDescriptorProto:
    """The file defining ``symbol`` (the first of the files v1 answers with: then its dependencies)."""
    (answer,) = ask(channel, V1, pb.ServerReflectionRequest(file_containing_symbol=symbol))
    assert answer.WhichOneof("message_response") == "file_descriptor_response", answer
    assert answer.original_request.file_containing_symbol == symbol
    return descriptor_pb2.FileDescriptorProto.FromString(
        answer.file_descriptor_response.file_descriptor_proto[0]
    )


def test_v1_lists_every_coord_service_and_both_reflections(coord_single: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord_single.target) as channel:
        services = listed(channel)
        assert services == listed(channel, V1ALPHA)  # one list, whichever version is asked
    expected = coord_services()
    assert len(expected) >= 10 and expected <= services
    assert {"grpc.health.v1.Health", *REFLECTION} <= services
    assert services - expected - REFLECTION <= {
        "grpc.health.v1.Health",
        "envoy.service.ratelimit.v3.RateLimitService",
    }


def test_v1_resolves_files_by_symbol(coord_single: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord_single.target) as channel:
        cache = file_of(channel, "coord.cache.v1.CacheService")
        assert cache.name == "coord/cache/v1/cache.proto" and cache.package == "coord.cache.v1"
        set_method = next(m for m in cache.service[0].method if m.name == "Set")
        assert set_method.input_type == ".coord.cache.v1.SetRequest"
        message = file_of(channel, "coord.lock.v1.AcquireRequest")
        assert message.name == "coord/lock/v1/lock.proto"
        # Reflection describes v1 itself, so that a tool can describe what it is talking to.
        own = file_of(channel, "grpc.reflection.v1.ServerReflection")
        assert (own.name, own.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
        info = own.service[0].method[0]
        assert (info.input_type, info.output_type) == (
            ".grpc.reflection.v1.ServerReflectionRequest",
            ".grpc.reflection.v1.ServerReflectionResponse",
        )
        (missing,) = ask(channel, V1, pb.ServerReflectionRequest(file_containing_symbol="coord.Nothing"))
        assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_v1_answers_each_request_of_one_stream_in_order(coord_single: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord_single.target) as channel:
        answers = ask(
            channel,
            V1,
            pb.ServerReflectionRequest(list_services=""),
            pb.ServerReflectionRequest(file_by_filename="coord/events/v1/events.proto"),
            pb.ServerReflectionRequest(file_containing_symbol="coord.session.v1.SessionService"),
        )
    kinds = [a.WhichOneof("message_response") for a in answers]
    assert kinds == ["list_services_response", "file_descriptor_response", "file_descriptor_response"]


def test_v1_is_not_served_when_reflection_is_off(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(redis_single.url, reflection="off")
    with grpc.insecure_channel(server.target) as channel:
        for path in (V1, V1ALPHA):
            with pytest.raises(grpc.RpcError) as caught:
                listed(channel, path)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_with_authentication_v1_follows_the_reflection_setting_like_v1alpha(
    redis_single: RedisProcess, tmp_path: Path, start_coord: Callable[..., CoordThread]
) -> None:
    _, digest = new_key()
    path = write_auth(tmp_path / "auth.yaml", api_keys=[api_key("k", digest, "a")])
    refused = start_coord(redis_single.url, auth_file=str(path))  # auto: not served with auth
    served = start_coord(redis_single.url, auth_file=str(path), reflection="on")
    with grpc.insecure_channel(refused.target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            listed(channel)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with grpc.insecure_channel(served.target) as channel:  # open to a caller with no credentials
        assert REFLECTION <= listed(channel) == listed(channel, V1ALPHA)
