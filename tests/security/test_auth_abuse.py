"""Bad credentials and bad auth files: nothing crashes, nothing says which check failed, nothing
reaches Redis, and an auth file that could break a key prefix or grant an unknown permission is
refused when it is loaded, with its file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass

from coord.cache.v1 import cache_pb2
from coord.collections.v1 import list_pb2, map_pb2, set_pb2, sorted_set_pb2
from coord.events.v1 import events_pb2
from coord.lock.v1 import lock_pb2
from coord.ratelimit.v1 import ratelimit_pb2
from coord.session.v1 import session_pb2
from coord_server import auth
from coord_server.auth.keys import AuthFileError, parse_auth_file
from coord_server.config import ConfigError
from tests.conftest import CoordThread, RedisProcess, make_settings

from .authkit import Metadata, api_key, bearer, get, new_key, redis_commands, refused, write_auth

FILES = (
    cache_pb2,
    lock_pb2,
    ratelimit_pb2,
    session_pb2,
    events_pb2,
    map_pb2,
    list_pb2,
    set_pb2,
    sorted_set_pb2,
)


@pytest.fixture(scope="module")
def key() -> tuple[str, str]:
    return new_key()


@pytest.fixture(scope="module")
def server(
    redis_single: RedisProcess, key: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CoordThread]:
    path = write_auth(tmp_path_factory.mktemp("abuse") / "auth.yaml", api_keys=[api_key("k", key[1], "t")])
    server = CoordThread(make_settings(redis_single.url, auth_file=str(path))).start()
    yield server
    server.stop()


@pytest.fixture
def channel(server: CoordThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as channel:
        yield channel


@pytest.fixture
def r(redis_single: RedisProcess) -> Iterator[redis.Redis]:
    with redis_single.client() as client:
        yield client


def _one_byte_changed(key: str) -> list[str]:
    changed = []
    for at in (0, len("coord_"), len(key) // 2, len(key) - 1):
        swap = "A" if key[at] != "A" else "B"
        changed.append(key[:at] + swap + key[at + 1 :])
    return [*changed, key[:-1], key + "A"]


def bad_metadata(key: str, digest: str) -> dict[str, Metadata]:
    cases: dict[str, Metadata] = {
        "no metadata": (),
        "Bearer alone": (("authorization", "Bearer"),),
        "Bearer and a space": (("authorization", "Bearer "),),
        "Bearer and spaces": (("authorization", "Bearer    "),),
        "another scheme": (("authorization", f"Basic {key}"),),
        "no scheme": (("authorization", key),),
        "the digest as the key": bearer(digest),
        "two credentials": (*bearer(key), *bearer(key)),
        "a JWT-shaped key": bearer("a.b.c"),
    }
    for number, changed in enumerate(_one_byte_changed(key)):
        cases[f"one byte changed ({number})"] = bearer(changed)
    return cases


def test_bad_credentials_get_one_refusal_and_never_reach_redis(
    channel: grpc.Channel, r: redis.Redis, key: tuple[str, str]
) -> None:
    get(channel, "k", bearer(key[0]))  # the key works
    before = redis_commands(r)
    answers = {
        what: refused(lambda md=metadata: get(channel, "k", md))  # type: ignore[misc]
        for what, metadata in bad_metadata(*key).items()
    }
    assert redis_commands(r) == before
    first = answers["no metadata"]
    assert (first.code, first.reason, first.message) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
        auth.UNAUTHENTICATED_MESSAGE,
    )
    for what, answer in answers.items():
        assert answer.details == first.details, what
    # The scheme is case-insensitive (RFC 7235); the key is not.
    get(channel, "k", (("authorization", f"bearer {key[0]}"),))


def test_a_1_mib_authorization_header_is_refused_and_the_server_goes_on(
    channel: grpc.Channel, r: redis.Redis, key: tuple[str, str]
) -> None:
    before = redis_commands(r)
    # 9 KiB lies between gRPC's soft (8 KiB) and hard (16 KiB) metadata limits, where gRPC refuses a
    # random share of calls itself; whatever reaches the server is refused there, unread.
    for size in (9 * 1024, 9 * 1024, 9 * 1024, 1 << 20, 1 << 20, 1 << 20):
        with pytest.raises(grpc.RpcError) as refusal:
            get(channel, "k", bearer("x" * size))
        # gRPC's own metadata limit refuses it before any handler (or, below that limit, the server).
        assert refusal.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAUTHENTICATED)
    assert redis_commands(r) == before
    get(channel, "k", bearer(key[0]))


def _methods() -> list[MethodDescriptor]:
    return [
        method
        for file in FILES
        for service in file.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def _call(channel: grpc.Channel, method: MethodDescriptor, metadata: Metadata) -> Any:
    path = f"/{method.containing_service.full_name}/{method.name}"
    request = GetMessageClass(method.input_type)()
    decode = GetMessageClass(method.output_type).FromString
    kind: Any = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(method.client_streaming, method.server_streaming)]
    stub = kind(path, request_serializer=type(request).SerializeToString, response_deserializer=decode)
    argument = iter([request]) if method.client_streaming else request
    answer = stub(argument, metadata=metadata, timeout=10)
    return list(answer) if method.server_streaming else answer


@pytest.mark.parametrize("method", _methods(), ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_every_method_of_every_service_needs_credentials(
    method: MethodDescriptor, channel: grpc.Channel, r: redis.Redis
) -> None:
    before = redis_commands(r)
    for metadata in ((), bearer("coord_not-a-key")):
        answer = refused(lambda md=metadata: _call(channel, method, md))  # type: ignore[misc]
        assert (answer.code, answer.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    assert redis_commands(r) == before


# -- auth files refused at load ---------------------------------------------------------------------

_, DIGEST = new_key()
_, OTHER = new_key()


def _file(**sections: Any) -> str:
    return json.dumps(sections, indent=2)


def _keys(*entries: dict[str, Any]) -> str:
    return _file(api_keys=list(entries))


BAD_FILES: dict[str, tuple[str, str]] = {
    # what: (file text, the message expected, after "auth.yaml:<line>: ")
    **{
        f"tenant {tenant!r}": (_keys(api_key("k", DIGEST, tenant)), "tenant .*must be 1-64")
        for tenant in ("a{b", "a}b", "{a}", "a:b", "a*", "*", "a\nb", "a b", " a", "a\t", "", "x" * 65, "é")
    },
    "digest too short": (_keys(api_key("k", DIGEST[:-1], "t")), "sha256 must be 64 hex digits"),
    "digest not hex": (_keys(api_key("k", "g" * 64, "t")), "sha256 must be 64 hex digits"),
    "the key instead of its digest": (_keys(api_key("k", "coord_" + "x" * 43, "t")), "sha256 must be"),
    "unknown service": (_keys(api_key("k", DIGEST, "t", ["kv"])), "unknown service 'kv'"),
    "unknown method": (_keys(api_key("k", DIGEST, "t", ["cache.Nope"])), "cache has no method 'Nope'"),
    "method of an unknown service": (_keys(api_key("k", DIGEST, "t", ["kv.Get"])), "unknown service 'kv'"),
    "empty allow": (_keys(api_key("k", DIGEST, "t", [])), "allow must be a non-empty list"),
    "allow as text": (_keys({**api_key("k", DIGEST, "t"), "allow": "*"}), "allow must be a non-empty list"),
    "duplicate name": (
        _keys(api_key("k", DIGEST, "t"), api_key("k", OTHER, "t")),
        "name 'k' is already used",
    ),
    "duplicate digest": (
        _keys(api_key("k", DIGEST, "t"), api_key("j", DIGEST.upper(), "u")),
        "this sha256 is already listed",
    ),
    "bad name": (_keys(api_key("two words", DIGEST, "t")), "name 'two words'"),
    "unknown field": (_keys({**api_key("k", DIGEST, "t"), "key": "secret"}), "unknown field 'key'"),
    "missing field": (_keys({"name": "k", "sha256": DIGEST, "allow": ["*"]}), "this entry has no 'tenant'"),
    "unknown section": (_file(users=[]), "unknown section 'users'"),
    "entries not a list": (_file(api_keys={"k": {}}), "api_keys must be a list"),
    "duplicate san": (
        _file(
            certificates=[
                {"san": "spiffe://x", "tenant": "t", "allow": ["*"]},
                {"san": "spiffe://x", "name": "other", "tenant": "u", "allow": ["*"]},
            ]
        ),
        "san 'spiffe://x' is already listed",
    ),
    "a san with a space": (
        _file(certificates=[{"san": "a b", "tenant": "t", "allow": ["*"]}]),
        "san 'a b'",
    ),
    "a certificate tenant with a colon": (
        _file(certificates=[{"san": "spiffe://x", "tenant": "t:u", "allow": ["*"]}]),
        "tenant 't:u'",
    ),
    "not YAML": ("api_keys: [\n", "not valid YAML"),
    "not a mapping": ("- a\n- b\n", "the file must be a mapping"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=lambda c: c.encode("unicode_escape").decode())
def test_a_bad_auth_file_is_refused_with_file_and_line(case: str) -> None:
    text, message = BAD_FILES[case]
    with pytest.raises(AuthFileError, match=rf"^auth\.yaml:\d+: (.|\n)*{message}"):
        parse_auth_file(text, "auth.yaml")


def test_the_line_named_is_the_bad_one() -> None:
    text = f"""\
api_keys:
  - name: good
    sha256: "{DIGEST}"
    tenant: good
    allow: ["*"]
  - name: bad
    sha256: "{OTHER}"
    tenant: "bad:tenant"
    allow: ["*"]
"""
    with pytest.raises(AuthFileError, match=r"^auth\.yaml:8: tenant 'bad:tenant'"):
        parse_auth_file(text, "auth.yaml")


def test_the_server_does_not_start_with_a_bad_auth_file(redis_single: RedisProcess, tmp_path: Path) -> None:
    path = tmp_path / "auth.yaml"
    path.write_text(_keys(api_key("k", DIGEST, "a}b")))
    server = CoordThread(make_settings(redis_single.url, auth_file=str(path)))
    with pytest.raises(ConfigError, match=r"auth\.yaml:\d+: tenant 'a}b'"):
        server.start()


def test_names_and_tenants_are_text_as_written() -> None:
    text = f"api_keys:\n  - name: 007\n    sha256: {DIGEST}\n    tenant: 0042\n    allow: ['*']\n"
    identity = next(iter(parse_auth_file(text, "auth.yaml").api_keys.values())).identity
    assert (identity.name, identity.tenant) == ("007", "0042")
