"""API keys and certificate identities: who may call, in which tenant, and what.

A key for tenant ``a`` never reads what a key for tenant ``b`` wrote; a key allowed only ``ratelimit``
gets PERMISSION_DENIED (reason and permission in the ErrorInfo) on cache.Get; health is open to all;
reflection follows COORD_REFLECTION; SIGHUP reloads the auth file (and a broken one keeps the old);
a client certificate's SAN is an identity under mTLS; ``coordctl auth new-key`` makes a working key.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from coord.cache.v1 import cache_pb2
from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc
from coord_client.cli import main as coordctl
from coord_client.errors import PermissionDenied, from_grpc_error
from coord_server import auth
from coord_server.auth.authenticator import Authenticator
from coord_server.config import ConfigError
from tests.certs import make_ca
from tests.conftest import CoordThread, RedisProcess, free_port, make_settings, wait_for

from .authkit import (
    api_key,
    bearer,
    cache_stub,
    get,
    new_key,
    refused,
    set_value,
    write_auth,
)

CACHE_SERVICE = "coord.cache.v1.CacheService"


class Keys:
    """The keys of the module's auth file, by role."""

    def __init__(self) -> None:
        self.a, self.a_digest = new_key()
        self.b, self.b_digest = new_key()
        self.ratelimit_only, self.ratelimit_digest = new_key()
        self.get_only, self.get_digest = new_key()

    def entries(self) -> list[dict[str, Any]]:
        return [
            api_key("tenant-a", self.a_digest, "a"),
            api_key("tenant-b", self.b_digest, "b", ["cache", "events"]),
            api_key("limiter", self.ratelimit_digest, "a", ["ratelimit"]),
            api_key("reader", self.get_digest, "a", ["cache.Get"]),
        ]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module", params=["single", "cluster"])
def server(
    request: pytest.FixtureRequest, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CoordThread]:
    backing = request.getfixturevalue(f"redis_{request.param}")
    path = write_auth(tmp_path_factory.mktemp("auth") / "auth.yaml", api_keys=keys.entries())
    settings = make_settings(backing.url, cluster=request.param == "cluster", auth_file=str(path))
    server = CoordThread(settings).start()
    server.backing = backing  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def channel(server: CoordThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as channel:
        yield channel


def test_a_key_of_tenant_a_never_reads_what_tenant_b_wrote(
    server: CoordThread, channel: grpc.Channel, keys: Keys
) -> None:
    set_value(channel, "shared-name", b"written by a", bearer(keys.a))
    assert not get(channel, "shared-name", bearer(keys.b)).entry.found
    set_value(channel, "shared-name", b"written by b", bearer(keys.b))
    assert get(channel, "shared-name", bearer(keys.a)).entry.value == b"written by a"
    assert get(channel, "shared-name", bearer(keys.b)).entry.value == b"written by b"
    with server.backing.client() as r:  # type: ignore[attr-defined]
        found = sorted(k.decode() for k in r.scan_iter(match="*shared-name*"))
    assert found == ["coord:a:cache:{shared-name}", "coord:b:cache:{shared-name}"]


def test_the_tenant_holds_for_a_whole_stream(channel: grpc.Channel, keys: Keys) -> None:
    set_value(channel, "streamed", b"a's", bearer(keys.a))
    set_value(channel, "streamed", b"b's", bearer(keys.b))
    for key, expected in ((keys.a, b"a's"), (keys.b, b"b's")):
        requests = [
            cache_pb2.GetStreamRequest(request_id=i, get=cache_pb2.GetRequest(key="streamed"))
            for i in range(20)
        ]
        answers = list(cache_stub(channel).GetStream(iter(requests), metadata=bearer(key), timeout=10))
        assert sorted(a.request_id for a in answers) == list(range(20))
        assert {a.get.entry.value for a in answers} == {expected}


def test_a_key_allowed_only_ratelimit_is_denied_cache_get(channel: grpc.Channel, keys: Keys) -> None:
    refusal = refused(lambda: get(channel, "k", bearer(keys.ratelimit_only)))
    assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
    assert refusal.reason == "PERMISSION_DENIED"
    assert refusal.metadata == {"permission": "cache.Get"}
    # The client maps it as for any other error: class, reason, metadata.
    try:
        get(channel, "k", bearer(keys.ratelimit_only))
    except grpc.RpcError as error:
        mapped = from_grpc_error(error)
    assert isinstance(mapped, PermissionDenied)
    assert (mapped.reason, mapped.metadata) == ("PERMISSION_DENIED", {"permission": "cache.Get"})
    # What it is allowed, it may do.
    stub = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
    rule = ratelimit_pb2.Rule(limit=10, period=duration_pb2.Duration(seconds=60))
    descriptor = ratelimit_pb2.Descriptor(key="user:1", rule=rule)
    reply = stub.Check(
        ratelimit_pb2.CheckRequest(descriptors=[descriptor]), metadata=bearer(keys.ratelimit_only)
    )
    assert reply.allowed


def test_one_method_allowed_is_that_method_only(channel: grpc.Channel, keys: Keys) -> None:
    assert not get(channel, "method-only", bearer(keys.get_only)).entry.found
    refusal = refused(lambda: set_value(channel, "method-only", b"v", bearer(keys.get_only)))
    assert (refusal.code, refusal.metadata) == (
        grpc.StatusCode.PERMISSION_DENIED,
        {"permission": "cache.Set"},
    )


def test_health_needs_no_credentials(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", CACHE_SERVICE):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_is_off_when_auth_is_on_unless_enabled(
    redis_single: RedisProcess, tmp_path: Path, start_coord: Callable[..., CoordThread]
) -> None:
    _, digest = new_key()
    path = write_auth(tmp_path / "auth.yaml", api_keys=[api_key("k", digest, "a")])
    for setting, served in (("auto", False), ("off", False), ("on", True)):
        server = start_coord(redis_single.url, auth_file=str(path), reflection=setting)
        assert _reflected_services(server.target) == (
            {
                CACHE_SERVICE,
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            }
            if served
            else None
        ), setting


def test_reflection_follows_the_setting_without_auth(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    assert CACHE_SERVICE in (_reflected_services(start_coord(redis_single.url).target) or ())
    assert _reflected_services(start_coord(redis_single.url, reflection="off").target) is None


def _reflected_services(target: str) -> set[str] | None:
    """The services reflection lists (to a caller with no credentials), or None when it is not served."""
    with grpc.insecure_channel(target) as channel:
        try:
            names = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
            return None
    return {n for n in names if not n.startswith(("coord.", "envoy.")) or n == CACHE_SERVICE}


def test_reload_takes_new_keys_and_a_broken_file_keeps_the_old(
    redis_single: RedisProcess, tmp_path: Path, start_coord: Callable[..., CoordThread]
) -> None:
    old, old_digest = new_key()
    fresh, fresh_digest = new_key()
    path = write_auth(tmp_path / "auth.yaml", api_keys=[api_key("old", old_digest, "a")])
    server = start_coord(redis_single.url, auth_file=str(path))
    reload = _reloader(server)
    with grpc.insecure_channel(server.target) as channel:
        get(channel, "k", bearer(old))
        write_auth(path, api_keys=[api_key("fresh", fresh_digest, "a")])
        assert reload()
        get(channel, "k", bearer(fresh))
        # The removed key stops working at once, although it was verified (and remembered) before.
        assert refused(lambda: get(channel, "k", bearer(old))).code == grpc.StatusCode.UNAUTHENTICATED
        for broken in ("a:b", "{a}", "a*", "a\nb"):
            write_auth(path, api_keys=[api_key("old", old_digest, broken)])
            assert not reload(), broken
            get(channel, "k", bearer(fresh))
            assert refused(lambda: get(channel, "k", bearer(old))).code == grpc.StatusCode.UNAUTHENTICATED
        path.write_text("api_keys: [unclosed\n")
        assert not reload()
        path.unlink()
        assert not reload()
        get(channel, "k", bearer(fresh))


def _reloader(server: CoordThread) -> Callable[[], bool]:
    """What SIGHUP does (``RunningServer.reload``), run on the server's loop; whether auth reloaded."""

    async def reload() -> bool:
        assert server.app is not None and server.app.auth is not None
        server.app.reload()
        return server.app.auth.authenticator.file is not before[0]

    before: list[object] = []

    def run() -> bool:
        assert server.app is not None and server.app.auth is not None
        before[:] = [server.app.auth.authenticator.file]
        return bool(server.run(reload()))

    return run


def test_sighup_reloads_the_auth_file(redis_single: RedisProcess, tmp_path: Path) -> None:
    old, old_digest = new_key()
    fresh, fresh_digest = new_key()
    path = write_auth(tmp_path / "auth.yaml", api_keys=[api_key("old", old_digest, "a")])
    port = free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env |= {"COORD_AUTH_FILE": str(path), "COORD_REDIS_URL": redis_single.url}
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coord_server", "--listen", f"127.0.0.1:{port}", "--log-level", "info",
             "--shutdown-grace", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_for(lambda: _works(channel, old), "the server with the old key")
            write_auth(path, api_keys=[api_key("fresh", fresh_digest, "a")])
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: _works(channel, fresh), "the fresh key after SIGHUP")
            path.write_text("api_keys:\n  - name: x\n    sha256: nothex\n    tenant: a\n    allow: ['*']\n")
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: b"auth NOT reloaded" in log.read_bytes(), "the refused reload in the log")
            assert b"auth.yaml:3: sha256 must be 64 hex digits" in log.read_bytes()
            assert _works(channel, fresh)
            assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = log.read_text()
    assert old not in text and fresh not in text  # no key ever reaches the log


def _works(channel: grpc.Channel, key: str) -> bool:
    try:
        get(channel, "k", bearer(key))
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE):
            return False
        raise
    return True


def test_a_broken_auth_file_stops_the_start(redis_single: RedisProcess, tmp_path: Path) -> None:
    _, digest = new_key()
    path = write_auth(tmp_path / "auth.yaml", api_keys=[api_key("k", digest, "no spaces")])
    with pytest.raises(ConfigError, match=r"auth\.yaml:\d+: tenant 'no spaces'"):
        auth.build(make_settings(redis_single.url, auth_file=str(path)))
    with pytest.raises(ConfigError, match="cannot be read"):
        auth.build(make_settings(redis_single.url, auth_file=str(tmp_path / "missing.yaml")))


# -- mTLS identities ---------------------------------------------------------------------------------


def test_a_client_certificate_san_is_an_identity(
    redis_single: RedisProcess, tmp_path: Path, start_coord: Callable[..., CoordThread]
) -> None:
    ca = make_ca(tmp_path / "pki")
    served = ca.server()
    alice = ca.issue("alice", uris=("spiffe://coord/alice",), server=False)
    bob = ca.issue("bob", dns=("bob.coord.test",), server=False)
    carol = ca.issue("carol", uris=("spiffe://coord/carol",), server=False)  # not in the file
    key, digest = new_key()
    path = write_auth(
        tmp_path / "auth.yaml",
        api_keys=[api_key("key-c", digest, "c")],
        certificates=[
            {"san": "spiffe://coord/alice", "tenant": "alice", "allow": ["cache"]},
            {"san": "bob.coord.test", "name": "bob", "tenant": "bob", "allow": ["cache.Get"]},
        ],
    )
    server = start_coord(
        redis_single.url,
        auth_file=str(path),
        tls_cert=str(served.cert_path),
        tls_key=str(served.key_path),
        tls_client_ca=str(ca.cert_path),
    )

    def channel(pair: Any) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(ca.cert_pem, pair.key_pem, pair.cert_pem)
        return grpc.secure_channel(server.target, credentials)

    with channel(alice) as as_alice, channel(bob) as as_bob, channel(carol) as as_carol:
        set_value(as_alice, "k", b"alice's", None)
        assert get(as_alice, "k", None).entry.value == b"alice's"
        assert not get(as_bob, "k", None).entry.found  # another tenant
        denied = refused(lambda: set_value(as_bob, "k", b"v", None))
        assert (denied.code, denied.metadata) == (
            grpc.StatusCode.PERMISSION_DENIED,
            {"permission": "cache.Set"},
        )
        assert refused(lambda: get(as_carol, "k", None)).code == grpc.StatusCode.UNAUTHENTICATED
        # A bearer credential, when sent, is the identity, whatever the certificate says.
        assert not get(as_alice, "k", bearer(key)).entry.found
        assert refused(lambda: get(as_alice, "k", bearer("wrong"))).code == grpc.StatusCode.UNAUTHENTICATED
    with redis_single.client() as r:
        assert r.exists("coord:alice:cache:{k}") and not r.exists("coord:bob:cache:{k}")


def test_the_sans_are_read_from_the_pem_when_grpc_does_not_list_them(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "pki")
    pair = ca.issue("dave", uris=("spiffe://coord/dave",), dns=("dave.test",), server=False)
    path = write_auth(
        tmp_path / "auth.yaml", certificates=[{"san": "dave.test", "tenant": "d", "allow": ["*"]}]
    )
    authenticator = Authenticator(make_settings("redis://127.0.0.1:1", auth_file=str(path)))
    identity = authenticator.from_certificate({"x509_pem_cert": [pair.cert_pem]})
    assert identity is not None and (identity.name, identity.tenant) == ("dave.test", "d")
    assert authenticator.from_certificate({"x509_pem_cert": [ca.issue("eve", server=False).cert_pem]}) is None


# -- coordctl auth new-key ---------------------------------------------------------------------------


def test_coordctl_new_key_prints_a_key_and_an_entry_that_loads(
    redis_single: RedisProcess,
    tmp_path: Path,
    start_coord: Callable[..., CoordThread],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--json", "auth", "new-key", "--name", "billing-web", "--tenant", "billing"]
    assert coordctl([*argv, "--allow", "cache", "--allow", "ratelimit.Check", "--allow", "cache"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["key"].startswith("coord_") and len(printed["key"]) > 40
    assert printed["allow"] == ["cache", "ratelimit.Check"]
    path = tmp_path / "auth.yaml"
    path.write_text("api_keys:\n" + printed["yaml"])
    server = start_coord(redis_single.url, auth_file=str(path))
    with grpc.insecure_channel(server.target) as channel:
        set_value(channel, "from-cli", b"v", bearer(printed["key"]))
    with redis_single.client() as r:
        assert r.exists("coord:billing:cache:{from-cli}")
    # Text mode shows the key once and the entry; two runs never give the same key.
    assert coordctl(["auth", "new-key", "--name", "n", "--tenant", "t", "--allow", "*"]) == 0
    text = capsys.readouterr().out
    assert text.count("coord_") == 1 and 'allow: ["*"]' in text and printed["key"] not in text


@pytest.mark.parametrize(
    "flag", [["--tenant", "a:b"], ["--tenant", "a b"], ["--allow", "cache.Nope"], ["--allow", "kv"]]
)
def test_coordctl_new_key_refuses_what_the_server_would(
    flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = {"--name": "n", "--tenant": "t", "--allow": "*"} | {flag[0]: flag[1]}
    with pytest.raises(SystemExit) as exited:
        coordctl(["auth", "new-key", *(x for pair in argv.items() for x in pair)])
    assert exited.value.code == 2
    assert "coord_" not in capsys.readouterr().out
