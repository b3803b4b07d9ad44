"""TLS on Coord's port: round trips, refusals in the handshake, certificate reload without dropping
connections, and the rule that a server reachable from the network needs TLS and authentication.

Every handshake is a real one, with certificates made by tests/certs.py; the certificate a new
connection sees is read with the ``ssl`` module, the way any TLS client sees it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from coord.events.v1 import events_pb2, events_pb2_grpc
from coord_client import NO_RETRY, AsyncClient, Client, TLSConfig, Unavailable
from coord_server.app import running
from coord_server.config import ConfigError, Settings
from coord_server.tls import check_exposure
from tests.certs import CA, Pair, make_ca
from tests.conftest import CoordThread, RedisClusterProcess, RedisProcess, make_settings, wait_for

TARGET_HOST = "127.0.0.1"


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return make_ca(tmp_path / "pki")


@pytest.fixture
def served(ca: CA) -> Pair:
    """The server's certificate, at the paths the server is configured with (rotation replaces them)."""
    return ca.server()


def tls_settings(pair: Pair, **overrides: object) -> dict[str, object]:
    return {"tls_cert": str(pair.cert_path), "tls_key": str(pair.key_path), **overrides}


def peer_serial(target: str, ca: CA, client: Pair | None = None) -> int:
    """The serial number of the certificate a NEW connection to ``target`` is served."""
    host, port = target.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    context.set_alpn_protocols(["h2"])
    if client is not None:
        context.load_cert_chain(str(client.cert_path), str(client.key_path))
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def serial(pair: Pair) -> int:
    return int(x509.load_pem_x509_certificate(pair.cert_pem).serial_number)


def rotate(ca: CA, served: Pair, name: str) -> Pair:
    """A new server certificate from ``ca`` moved over the served files, as a rotation tool does
    (write elsewhere, then rename: the served paths never hold half a file)."""
    fresh = ca.server(name)
    os.replace(fresh.key_path, served.key_path)
    os.replace(fresh.cert_path, served.cert_path)
    return fresh


def reload(server: CoordThread) -> None:
    """What SIGHUP does, on the server's own event loop."""
    app = server.app
    assert app is not None

    async def run() -> None:
        app.reload()

    server.run(run())


# -- round trips ------------------------------------------------------------------------------


@pytest.fixture(params=["single", "cluster"])
def backing(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """The URL of a test Redis, single node or Cluster, and whether it is a cluster."""
    proc: RedisProcess | RedisClusterProcess = request.getfixturevalue(f"redis_{request.param}")
    return proc.url, request.param == "cluster"


def test_tls_round_trip_sync_and_async(
    start_coord: Callable[..., CoordThread], backing: tuple[str, bool], ca: CA, served: Pair
) -> None:
    url, cluster = backing
    server = start_coord(url, cluster=cluster, **tls_settings(served))
    with Client(server.target, tls=TLSConfig(ca=ca.cert_path)) as client:
        client.cache.set("tls:greeting", b"over tls", ttl=60)
        assert client.cache.get("tls:greeting").value == b"over tls"

    async def async_round_trip() -> bytes:
        # PEM bytes instead of a path.
        async with AsyncClient(server.target, tls=TLSConfig(ca=ca.cert_pem)) as client:
            return (await client.cache.get("tls:greeting")).value

    assert asyncio.run(async_round_trip()) == b"over tls"


def test_plaintext_client_is_refused_and_the_server_goes_on(
    start_coord: Callable[..., CoordThread], redis_single: RedisProcess, ca: CA, served: Pair
) -> None:
    server = start_coord(redis_single.url, **tls_settings(served))
    with Client(server.target, retry=NO_RETRY, timeout=5) as plain, pytest.raises(Unavailable):
        plain.cache.get("k")
    with Client(server.target, tls=TLSConfig(ca=ca.cert_path)) as client:
        client.cache.set("after-plaintext", b"served", ttl=60)
        assert client.cache.get("after-plaintext").value == b"served"


def test_a_client_that_does_not_trust_the_server_certificate_fails(
    start_coord: Callable[..., CoordThread], redis_single: RedisProcess, served: Pair, tmp_path: Path
) -> None:
    server = start_coord(redis_single.url, **tls_settings(served))
    stranger = make_ca(tmp_path / "stranger", "stranger")
    with (
        Client(server.target, tls=TLSConfig(ca=stranger.cert_path), retry=NO_RETRY) as client,
        pytest.raises(Unavailable),
    ):
        client.cache.get("k")


# -- mTLS ---------------------------------------------------------------------------------------


@pytest.fixture
def mtls_server(
    start_coord: Callable[..., CoordThread], redis_single: RedisProcess, ca: CA, served: Pair
) -> CoordThread:
    return start_coord(redis_single.url, **tls_settings(served, tls_client_ca=str(ca.cert_path)))


def test_mtls_refuses_a_client_without_a_certificate(mtls_server: CoordThread, ca: CA) -> None:
    with (
        Client(mtls_server.target, tls=TLSConfig(ca=ca.cert_path), retry=NO_RETRY) as client,
        pytest.raises(Unavailable),
    ):
        client.cache.get("k")


def test_mtls_refuses_a_certificate_from_another_ca(mtls_server: CoordThread, ca: CA, tmp_path: Path) -> None:
    other = make_ca(tmp_path / "other", "other")
    mallory = other.issue("mallory", uris=("spiffe://coord/mallory",), server=False)
    tls = TLSConfig(ca=ca.cert_path, cert=mallory.cert_path, key=mallory.key_path)
    with Client(mtls_server.target, tls=tls, retry=NO_RETRY) as client, pytest.raises(Unavailable):
        client.cache.get("k")


def test_mtls_accepts_a_certificate_the_client_ca_signed(mtls_server: CoordThread, ca: CA) -> None:
    alice = ca.issue("alice", uris=("spiffe://coord/alice",), server=False)
    tls = TLSConfig(ca=ca.cert_pem, cert=alice.cert_pem, key=alice.key_pem)
    with Client(mtls_server.target, tls=tls) as client:
        client.cache.set("k", b"v", ttl=60)
        assert client.cache.get("k").value == b"v"
    assert peer_serial(mtls_server.target, ca, alice) > 0  # any TLS client with such a certificate


# -- reload -------------------------------------------------------------------------------------


@pytest.fixture
def reloading_server(
    start_coord: Callable[..., CoordThread], redis_single: RedisProcess, served: Pair
) -> CoordThread:
    # 0: only reload() (SIGHUP) looks at the files, so nothing else can make the test pass.
    return start_coord(redis_single.url, **tls_settings(served, tls_reload_interval=0.0))


def test_reload_serves_new_connections_the_new_certificate_and_keeps_open_ones(
    reloading_server: CoordThread, ca: CA, served: Pair
) -> None:
    target = reloading_server.target
    with Client(target, tls=TLSConfig(ca=ca.cert_path)) as old:
        old.cache.set("k", b"before", ttl=60)
        stub = events_pb2_grpc.EventsServiceStub(old.channel)
        stream = stub.Subscribe(
            events_pb2.SubscribeRequest(topics=["rotation"], start=events_pb2.START_POSITION_LATEST)
        )
        frames = iter(stream)
        assert next(frames).WhichOneof("frame") == "subscribed"
        assert peer_serial(target, ca) == serial(served)

        fresh = rotate(ca, served, "server-2")
        assert peer_serial(target, ca) == serial(served)  # nothing looked at the files yet
        reload(reloading_server)
        assert peer_serial(target, ca) == serial(fresh) != serial(served)

        # The connection opened before the rotation, and its stream, still work.
        assert old.cache.get("k").value == b"before"
        old.events.publish("rotation", b"after")
        frame = next(f for f in frames if f.WhichOneof("frame") == "events")
        assert [e.data for e in frame.events.events] == [b"after"]
        stream.cancel()

    with Client(target, tls=TLSConfig(ca=ca.cert_path)) as new:
        assert new.cache.get("k").value == b"before"


def test_files_are_looked_at_again_after_the_reload_interval(
    start_coord: Callable[..., CoordThread], redis_single: RedisProcess, ca: CA, served: Pair
) -> None:
    server = start_coord(redis_single.url, **tls_settings(served, tls_reload_interval=0.001))
    assert peer_serial(server.target, ca) == serial(served)
    fresh = rotate(ca, served, "server-2")
    # Each new connection lets the server look at the files once the interval has passed.
    wait_for(lambda: peer_serial(server.target, ca) == serial(fresh), "the rotated certificate")
    assert server.app is not None and server.app.tls is not None and server.app.tls.loads == 1


def test_a_broken_replacement_keeps_the_previous_certificate(
    reloading_server: CoordThread, ca: CA, served: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    target = reloading_server.target
    secret_line = served.key_pem.splitlines()[1].decode()
    # A key that does not belong to the certificate, then a certificate file that is not PEM.
    other = ca.server("unrelated")
    served.key_path.write_bytes(other.key_pem)
    with caplog.at_level(logging.ERROR, logger="coord_server.tls"):
        reload(reloading_server)
    assert peer_serial(target, ca) == serial(served)
    assert f"is not the key of the certificate in {served.cert_path}" in caplog.text

    served.key_path.write_bytes(served.key_pem)
    served.cert_path.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="coord_server.tls"):
        reload(reloading_server)
    assert f"{served.cert_path} holds no PEM certificate" in caplog.text
    assert secret_line not in caplog.text and "PRIVATE KEY" not in caplog.text
    assert peer_serial(target, ca) == serial(served)
    with Client(target, tls=TLSConfig(ca=ca.cert_path)) as client:
        client.cache.set("broken-replacement", b"served", ttl=60)
        assert client.cache.get("broken-replacement").value == b"served"

    fixed = rotate(ca, served, "server-3")
    reload(reloading_server)
    assert peer_serial(target, ca) == serial(fixed)


def test_a_broken_file_found_by_the_interval_check_is_logged_once(
    start_coord: Callable[..., CoordThread],
    redis_single: RedisProcess,
    ca: CA,
    served: Pair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_coord(redis_single.url, **tls_settings(served, tls_reload_interval=0.001))
    assert server.app is not None and server.app.tls is not None
    tls = server.app.tls
    with caplog.at_level(logging.ERROR, logger="coord_server.tls"):
        served.cert_path.write_bytes(b"not a certificate")

        def refused() -> bool:
            assert peer_serial(server.target, ca) == serial(served)
            return "holds no PEM certificate" in caplog.text

        wait_for(refused, "the broken certificate to be noticed")
        looked = tls.checks
        wait_for(lambda: peer_serial(server.target, ca) and tls.checks >= looked + 3, "three more checks")
    assert len([r for r in caplog.records if r.name == "coord_server.tls"]) == 1
    assert tls.loads == 0


def test_sighup_reloads_the_certificates_of_a_server_process(
    redis_single: RedisProcess, ca: CA, served: Pair, tmp_path: Path
) -> None:
    with coord_process(
        tmp_path / "coord.log",
        "--redis-url", redis_single.url, "--tls-cert", str(served.cert_path),
        "--tls-key", str(served.key_path), "--tls-reload-interval", "0",
    ) as (proc, target):  # fmt: skip
        assert peer_serial(target, ca) == serial(served)
        fresh = rotate(ca, served, "server-2")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: peer_serial(target, ca) == serial(fresh), "the certificate after SIGHUP")


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"tls_cert": "/x/cert.pem"}, "COORD_TLS_KEY"),
        ({"tls_key": "/x/key.pem"}, "COORD_TLS_CERT"),
        ({"tls_client_ca": "/x/ca.pem"}, "COORD_TLS_CLIENT_CA"),
    ],
)
def test_tls_settings_that_do_not_go_together(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=f"^{named}: "):
        replace(Settings(), **overrides).validate()


def test_unusable_certificate_files_are_configuration_errors_naming_the_file(
    start_coord: Callable[..., CoordThread], redis_single: RedisProcess, ca: CA, served: Pair, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match=re.escape(f"COORD_TLS_CERT: cannot read {missing}")):
        start_coord(redis_single.url, tls_cert=str(missing), tls_key=str(served.key_path))

    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1jb250ZW50\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as refused:
        start_coord(redis_single.url, tls_cert=str(served.cert_path), tls_key=str(garbage))
    assert str(refused.value) == f"COORD_TLS_KEY: {garbage} is not an unencrypted PEM private key"

    other = ca.server("other")
    with pytest.raises(ConfigError) as mismatch:
        start_coord(redis_single.url, tls_cert=str(served.cert_path), tls_key=str(other.key_path))
    assert str(mismatch.value).startswith(f"COORD_TLS_KEY: {other.key_path} is not the key")
    assert other.key_pem.splitlines()[1].decode() not in str(mismatch.value)

    with pytest.raises(
        ConfigError, match=re.escape(f"COORD_TLS_CLIENT_CA: {garbage} holds no PEM certificate")
    ):
        start_coord(redis_single.url, **tls_settings(served, tls_client_ca=str(garbage)))


# -- secure by default --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1:0", "127.1.2.3:50051", "localhost:50051", "[::1]:50051", "unix:/run/coord.sock"],
)
def test_local_addresses_need_nothing(listen: str) -> None:
    assert check_exposure(Settings(listen=listen)) is False


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:50051", "[::]:50051", ":50051", "192.0.2.7:1", "coord.internal:1"]
)
def test_other_addresses_need_tls_and_authentication_or_insecure(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"COORD_TLS_CERT and COORD_TLS_KEY.*--insecure"):
        check_exposure(Settings(listen=listen))
    with pytest.raises(ConfigError, match="without authentication:"):
        check_exposure(Settings(listen=listen, tls_cert="c.pem", tls_key="k.pem"))
    with pytest.raises(ConfigError, match="without TLS:"):
        check_exposure(Settings(listen=listen, auth_file="auth.yaml"))
    both = Settings(listen=listen, tls_cert="c.pem", tls_key="k.pem", auth_file="auth.yaml")
    assert check_exposure(both) is False
    assert check_exposure(Settings(listen=listen, jwt_keys="jwks.json", tls_cert="c", tls_key="k")) is False
    assert check_exposure(Settings(listen=listen, insecure=True)) is True


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}


def test_the_server_refuses_to_listen_on_every_interface_in_one_line(redis_single: RedisProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coord_server", "--listen", "0.0.0.0:0", "--redis-url", redis_single.url],
        env=_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("coord-server: configuration error: refusing to listen on 0.0.0.0:0 without")
    for hint in ("COORD_TLS_CERT", "COORD_TLS_KEY", "COORD_AUTH_FILE", "COORD_JWT_KEYS", "--insecure"):
        assert hint in lines[0]


class coord_process:  # noqa: N801  (used as a context manager, like a function)
    """``python -m coord_server ARGS`` until the block ends (SIGTERM by pid); yields the process and
    the address from its start-up line, once it is written."""

    def __init__(self, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log, self.args, self.env = log, args, env or {}

    def __enter__(self) -> tuple[subprocess.Popen[bytes], str]:
        listen = () if "--listen" in self.args else ("--listen", f"{TARGET_HOST}:0")
        with self.log.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "coord_server", *listen, *self.args, "--shutdown-grace", "1"],
                env={**_env(), **self.env},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        port: list[str] = []

        def started() -> bool:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            for line in self.log.read_text(errors="replace").splitlines():
                if "Coord listening on " in line:
                    port.append(line.split("Coord listening on ", 1)[1].split(";", 1)[0].rsplit(":", 1)[1])
                    return True
            return False

        try:
            wait_for(started, "the coord-server process")
        except BaseException:
            self.__exit__()
            raise
        return self.proc, f"{TARGET_HOST}:{port[0]}"

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_insecure_lets_it_listen_beyond_loopback_with_a_warning(
    redis_single: RedisProcess, tmp_path: Path
) -> None:
    # ::ffff:127.0.0.1 is loopback to the kernel, but not one of the addresses the check accepts
    # (127.0.0.0/8, ::1, localhost): so --insecure is what lets it start, and no port is ever open
    # beyond this host, as 0.0.0.0 would be.
    log = tmp_path / "coord.log"
    with coord_process(
        log, "--listen", "[::ffff:127.0.0.1]:0", "--redis-url", redis_single.url, "--insecure"
    ):
        text = log.read_text()
    warnings = [line for line in text.splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and "without TLS and authentication" in warnings[0], text


def test_unix_socket_is_allowed_without_tls(
    start_coord: Callable[..., CoordThread], redis_single: RedisProcess, tmp_path: Path
) -> None:
    socket_path = tmp_path / "coord.sock"
    start_coord(redis_single.url, listen=f"unix:{socket_path}")
    with Client(f"unix:{socket_path}", token="a-local-token") as client:
        client.cache.set("k", b"v", ttl=60)
        assert client.cache.get("k").value == b"v"


def test_running_refuses_before_it_starts_anything(redis_single: RedisProcess) -> None:
    async def start() -> None:
        async with running(make_settings(redis_single.url, listen="0.0.0.0:0")):
            raise AssertionError("it must not start")

    with pytest.raises(ConfigError, match=re.escape("refusing to listen on 0.0.0.0:0")):
        asyncio.run(start())
