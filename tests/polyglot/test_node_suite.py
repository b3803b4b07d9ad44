"""The Node.js client suite (``@grpc/grpc-js``, .proto files loaded at run time) against real Coord.

It shares no code with the Python client: it proves that the .proto contract and the service config
are enough for a client in another language. Each run prints Node's own counts, also on success.

The same suite also runs over TLS with an API key, against a server configured only through
``COORD_TLS_CERT``, ``COORD_TLS_KEY`` and ``COORD_AUTH_FILE``, as a deployment would be; and a key
allowed only ``ratelimit`` shows a Node client reading PERMISSION_DENIED from the error details.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..certs import make_ca
from ..conftest import CoordThread, CoordUnderTest, RedisProcess, free_port, wait_for
from ..security.authkit import api_key, new_key, write_auth
from ._node import OUTAGE, SECURE, SUITE, run_node_suite


def test_node_suite(coord: CoordUnderTest) -> None:
    run = run_node_suite(coord.kind, SUITE, coord.target)
    print(run.summary)
    assert run.ok, f"{run.summary}\n{run.output}"


def test_node_retries_follow_the_service_config(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()
    server = start_coord(backing.url)
    backing.stop()  # every Redis call now fails fast: Coord answers UNAVAILABLE + RetryInfo
    run = run_node_suite("redis down", OUTAGE, server.target)
    print(run.summary)
    assert run.ok, f"{run.summary}\n{run.output}"


@dataclass(frozen=True)
class SecureCoord:
    """A Coord server process serving TLS and checking API keys, and what a client needs to call it."""

    target: str
    ca: Path  # the CA that signed the server's certificate
    full_token: Path  # a file holding a key allowed everything ("*")
    ratelimit_token: Path  # a file holding a key allowed only "ratelimit"

    def connection(self, token: Path) -> dict[str, str]:
        """The variables lib/coord.js connects with, as coordctl reads them."""
        return {"COORD_TLS_CA": str(self.ca), "COORD_TOKEN_FILE": str(token)}


def _token_file(path: Path, key: str) -> Path:
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return path


def _serving(target: str, ca: Path) -> bool:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    with grpc.secure_channel(target, credentials) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture(scope="module")
def secure_coord(
    redis_single: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureCoord]:
    folder = tmp_path_factory.mktemp("node-secure")
    ca = make_ca(folder / "pki")
    served = ca.server()
    full, full_digest = new_key()
    limited, limited_digest = new_key()
    auth = write_auth(
        folder / "auth.yaml",
        api_keys=[
            api_key("node-suite", full_digest, "node"),
            api_key("node-limiter", limited_digest, "node", ["ratelimit"]),
        ],
    )
    target = f"127.0.0.1:{free_port()}"
    # Configured the way a deployment is, through the environment alone. Reflection is turned on
    # (authentication turns it off by default) so that the platform file runs unchanged too.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")} | {
        "COORD_LISTEN": target,
        "COORD_REDIS_URL": redis_single.url,
        "COORD_TLS_CERT": str(served.cert_path),
        "COORD_TLS_KEY": str(served.key_path),
        "COORD_AUTH_FILE": str(auth),
        "COORD_REFLECTION": "on",
        "COORD_CACHE_PREFIX_DELIMITER": ":",
        "COORD_LOG_LEVEL": "WARNING",
        "COORD_SHUTDOWN_GRACE": "1s",
        # As tests/conftest.py's make_settings: bounds for a loaded 2-core machine, not production.
        "COORD_REDIS_TIMEOUT": "1s",
        "COORD_RATELIMIT_TIMEOUT": "1s",
        "COORD_HEALTH_INTERVAL": "200ms",
    }
    log = folder / "server.log"
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "coord_server"], env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            return _serving(target, ca.cert_path)

        wait_for(up, "coord-server process with TLS and API keys")
        yield SecureCoord(
            target=target,
            ca=ca.cert_path,
            full_token=_token_file(folder / "full.token", full),
            ratelimit_token=_token_file(folder / "ratelimit.token", limited),
        )
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_node_suite_over_tls_with_an_api_key(secure_coord: SecureCoord) -> None:
    connection = secure_coord.connection(secure_coord.full_token)
    run = run_node_suite("tls + api key", SUITE, secure_coord.target, connection=connection)
    print(run.summary)
    assert run.ok, f"{run.summary}\n{run.output}"


def test_node_reads_permission_denied_from_the_error_details(secure_coord: SecureCoord) -> None:
    connection = secure_coord.connection(secure_coord.ratelimit_token)
    run = run_node_suite("tls + ratelimit-only key", SECURE, secure_coord.target, connection=connection)
    print(run.summary)
    assert run.ok, f"{run.summary}\n{run.output}"
