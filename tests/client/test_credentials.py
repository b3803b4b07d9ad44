"""The client's TLS settings and bearer token, as a server receives them.

The server here is a real gRPC server on 127.0.0.1 (TLS, certificates from tests/certs.py) whose
CacheService.Get and EventsService.Subscribe only write down the ``authorization`` metadata each
call brought: what the client sends is the behaviour under test, whatever Coord then does with it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.events.v1 import events_pb2, events_pb2_grpc
from coord_client import AsyncClient, Client, TLSConfig
from coord_client._tls import BearerToken, is_local_address
from tests.certs import CA, make_ca
from tests.client.test_cli import coordctl
from tests.conftest import CoordThread, RedisProcess


class Recorder(cache_pb2_grpc.CacheServiceServicer, events_pb2_grpc.EventsServiceServicer):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []  # (method, authorization)
        self.lock = threading.Lock()

    def _record(self, method: str, context: grpc.ServicerContext) -> None:
        auth = dict(context.invocation_metadata()).get("authorization")
        with self.lock:
            self.seen.append((method, None if auth is None else str(auth)))

    def Get(self, request: Any, context: grpc.ServicerContext) -> cache_pb2.GetResponse:
        self._record("Get", context)
        return cache_pb2.GetResponse(entry=cache_pb2.Entry(key=request.key, found=False))

    def Subscribe(
        self, request: Any, context: grpc.ServicerContext
    ) -> Iterator[events_pb2.SubscribeResponse]:
        # One event per stream, then a resumable failure: the client subscribes again.
        self._record("Subscribe", context)
        n = sum(1 for method, _ in self.seen if method == "Subscribe")
        event = events_pb2.Event(topic="t", id=f"{n}-0", data=b"x")
        yield events_pb2.SubscribeResponse(events=events_pb2.Events(events=[event]))
        context.abort(grpc.StatusCode.UNAVAILABLE, "resubscribe, please")

    def tokens(self, method: str) -> list[str | None]:
        with self.lock:
            return [auth for m, auth in self.seen if m == method]


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return make_ca(tmp_path / "pki")


@pytest.fixture
def recorder(ca: CA) -> Iterator[tuple[Recorder, str]]:
    pair = ca.server()
    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    cache_pb2_grpc.add_CacheServiceServicer_to_server(recorder, server)
    events_pb2_grpc.add_EventsServiceServicer_to_server(recorder, server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(pair.key_pem, pair.cert_pem)]))
    server.start()
    yield recorder, f"127.0.0.1:{port}"
    server.stop(None)


def test_a_token_goes_with_every_call_streams_included(recorder: tuple[Recorder, str], ca: CA) -> None:
    rec, target = recorder
    with Client(target, tls=TLSConfig(ca=ca.cert_path), token="key-1") as client:
        client.cache.get("a")
        client.cache.get("b")
        with client.events.subscribe("t") as subscription:
            assert [e.id for e in itertools.islice(subscription, 2)] == ["1-0", "2-0"]
    assert rec.tokens("Get") == ["Bearer key-1"] * 2
    assert rec.tokens("Subscribe")[:2] == ["Bearer key-1"] * 2


def test_a_callable_token_is_asked_on_every_call_and_resubscription(
    recorder: tuple[Recorder, str], ca: CA
) -> None:
    rec, target = recorder
    counter = itertools.count(1)
    with Client(target, tls=TLSConfig(ca=ca.cert_pem), token=lambda: f"jwt-{next(counter)}") as client:
        client.cache.get("a")
        client.cache.get("b")
        with client.events.subscribe("t") as subscription:
            list(itertools.islice(subscription, 2))
    assert rec.tokens("Get") == ["Bearer jwt-1", "Bearer jwt-2"]
    # Each resumption is a new call, with the token of its moment.
    assert rec.tokens("Subscribe")[:2] == ["Bearer jwt-3", "Bearer jwt-4"]


def test_the_async_client_sends_it_too(recorder: tuple[Recorder, str], ca: CA) -> None:
    rec, target = recorder

    async def calls() -> None:
        async with AsyncClient(target, tls=TLSConfig(ca=ca.cert_path), token="key-2") as client:
            await client.cache.get("a")
            subscription = client.events.subscribe("t")
            async for _ in subscription:
                break
            subscription.close()

    asyncio.run(calls())
    assert rec.tokens("Get") == ["Bearer key-2"]
    assert rec.tokens("Subscribe")[0] == "Bearer key-2"


def test_no_token_no_authorization_header(recorder: tuple[Recorder, str], ca: CA) -> None:
    rec, target = recorder
    with Client(target, tls=TLSConfig(ca=ca.cert_path), metadata=[("x-request-source", "test")]) as client:
        client.cache.get("a")
    assert rec.tokens("Get") == [None]


@pytest.mark.parametrize(
    "target", ["10.0.0.1:50051", "coord.example.com:443", "dns:///coord.example.com:443", "[2001:db8::1]:1"]
)
def test_a_token_is_never_sent_in_clear_beyond_this_host(target: str) -> None:
    with pytest.raises(ValueError, match=r"in clear.*use TLS") as refused:
        Client(target, token="s3cret-key")
    assert "s3cret-key" not in str(refused.value)


@pytest.mark.parametrize(
    "target",
    [
        "127.0.0.1:50051",
        "localhost:1",
        "[::1]:1",
        "unix:/run/coord.sock",
        "dns:///localhost:1",
        "ipv4:127.0.0.1:1",
    ],
)
def test_a_token_may_go_in_clear_to_this_host(target: str) -> None:
    assert is_local_address(target)
    Client(target, token="dev-key").close()


def test_secrets_stay_out_of_reprs_and_errors(ca: CA, tmp_path: Path) -> None:
    alice = ca.issue("alice", server=False)
    tls = TLSConfig(ca=ca.cert_pem, cert=alice.cert_pem, key=alice.key_pem)
    assert "PRIVATE" not in repr(tls) and alice.key_pem.decode() not in repr(tls)
    assert repr(TLSConfig(ca=ca.cert_path)).startswith(f"TLSConfig(ca={str(ca.cert_path)!r}")
    assert "s3cret" not in repr(BearerToken("s3cret"))
    client = Client("127.0.0.1:1", token="s3cret", tls=tls)
    assert "s3cret" not in repr(client) + repr(vars(client)) + repr(vars(client._transport))
    client.close()
    for bad in ("two words", "line\nbreak", ""):
        with pytest.raises(ValueError, match=r"^token: ") as refused:
            Client("127.0.0.1:1", token=bad)
        assert bad not in str(refused.value) or not bad


def test_tls_arguments_that_do_not_go_together(ca: CA, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="certificate needs its key"):
        TLSConfig(cert=ca.cert_path)
    with pytest.raises(ValueError, match="not both"):
        Client("127.0.0.1:1", tls=True, credentials=grpc.ssl_channel_credentials())
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=re.escape(f"tls ca: cannot read {missing}")):
        Client("127.0.0.1:1", tls=TLSConfig(ca=missing))


def test_tls_true_uses_the_system_roots(recorder: tuple[Recorder, str]) -> None:
    # The test CA is in no system store: the handshake fails, which shows TLS was tried with them.
    rec, target = recorder
    with (
        Client(target, tls=True, timeout=5) as client,
        pytest.raises(Exception, match=r"UNAVAILABLE|certificate"),
    ):
        client.cache.get("a")
    assert rec.tokens("Get") == []


# -- coordctl -----------------------------------------------------------------------------------


def test_coordctl_sends_the_token_of_a_file_over_tls(
    recorder: tuple[Recorder, str], ca: CA, tmp_path: Path
) -> None:
    rec, target = recorder
    token_file = tmp_path / "token"
    token_file.write_text("ctl-key-1\n")
    done = coordctl(
        "--target",
        target,
        "--tls-ca",
        str(ca.cert_path),
        "--token-file",
        str(token_file),
        "cache",
        "get",
        "k",
    )
    assert done.returncode == 1 and done.stderr.decode().strip() == "k: not found", done.stderr
    # The same from the environment, and the token from stdin (never from the command line).
    env = {"COORD_TARGET": target, "COORD_TLS_CA": str(ca.cert_path), "COORD_TOKEN_FILE": "-"}
    assert coordctl("cache", "get", "k", env=env, stdin=b"ctl-key-2\n").returncode == 1
    assert rec.tokens("Get") == ["Bearer ctl-key-1", "Bearer ctl-key-2"]


def test_coordctl_token_file_problems_exit_2_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing-token"
    done = coordctl("--token-file", str(missing), "cache", "get", "k")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"coordctl: --token-file: cannot read {missing}: No such file or directory"
    ]
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert coordctl("--token-file", str(empty), "cache", "get", "k").returncode == 2
    secret = tmp_path / "secret"
    secret.write_text("s3cret-key")
    far = coordctl("--target", "192.0.2.1:50051", "--token-file", str(secret), "cache", "get", "k")
    assert far.returncode == 2 and b"in clear" in far.stderr and b"s3cret" not in far.stderr + far.stdout


@pytest.fixture
def mtls_coord(start_coord: Callable[..., CoordThread], redis_single: RedisProcess, ca: CA) -> CoordThread:
    pair = ca.server()
    return start_coord(
        redis_single.url,
        tls_cert=str(pair.cert_path),
        tls_key=str(pair.key_path),
        tls_client_ca=str(ca.cert_path),
    )


def test_coordctl_over_mtls(mtls_coord: CoordThread, ca: CA) -> None:
    alice = ca.issue("alice", server=False)
    tls = (
        "--tls-ca",
        str(ca.cert_path),
        "--tls-cert",
        str(alice.cert_path),
        "--tls-key",
        str(alice.key_path),
    )
    assert coordctl("--target", mtls_coord.target, *tls, "cache", "set", "m", "tls").returncode == 0
    got = coordctl("--target", mtls_coord.target, *tls, "cache", "get", "m")
    assert (got.returncode, got.stdout) == (0, b"tls\n"), got.stderr

    no_cert = coordctl(
        "--target", mtls_coord.target, "--tls-ca", str(ca.cert_path), "--timeout", "5s", "cache", "get", "m"
    )
    assert no_cert.returncode == 3, no_cert.stderr
    half = coordctl("--target", mtls_coord.target, "--tls-cert", str(alice.cert_path), "cache", "get", "m")
    assert half.returncode == 2 and b"certificate needs its key" in half.stderr
