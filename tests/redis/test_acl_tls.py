"""Coord against a Redis that locks it down: an ACL user with only the rules docs/security.md gives
(single node and Cluster), the password from a file, and TLS (``rediss://``) with a CA and a client
certificate against real TLS-only redis-servers (single node and Cluster).

The ACL rules are :mod:`coord_server.redis.acl`; these tests prove they are enough (every service
runs, Redis logs no refusal) and that they really restrict (what Coord does not need is refused).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

import coord_server
from coord_client import Client
from coord_server.config import ConfigError, Settings
from coord_server.errors import BackendUnavailable
from coord_server.redis import RedisBackend
from coord_server.redis import acl as coord_acl
from coord_server.redis.coalesce import Coalescer
from coord_server.redis.pipe import RespPipe
from coord_server.redis.security import RedisSecurity, read_password_file

from ..certs import make_ca
from ..conftest import (
    CoordThread,
    RedisClusterProcess,
    RedisProcess,
    RedisTLSFiles,
    TlsRedisClusterProcess,
    TlsRedisProcess,
)
from . import smoke

USER = "coord"
# An @ in the password: the URL must still be split after the last @ (and never logged).
PASSWORD = "acl-p@ss-7d1e"

# redis.call('CMD', ...) and pcall(redis.call, 'CMD', 'SUB', ...) in Coord's Lua.
_CALL = re.compile(
    r"""(?:redis\.p?call\(|pcall\(\s*redis\.p?call\s*,)\s*['"](\w+)['"](?:\s*,\s*['"](\w+)['"])?"""
)
_CONTAINERS = {"xgroup", "xinfo", "client", "script", "object", "config", "cluster"}


def _nodes(backing: RedisProcess | RedisClusterProcess) -> list[RedisProcess]:
    return list(backing.nodes) if isinstance(backing, RedisClusterProcess) else [backing]


def _setuser(backing: RedisProcess | RedisClusterProcess) -> None:
    """Coord's user, with exactly the documented rules, on every node; the ACL log emptied."""
    for node in _nodes(backing):
        with node.client() as r:
            r.execute_command("ACL", "SETUSER", USER, "reset", "on", f">{PASSWORD}", *coord_acl.rules())
            r.execute_command("ACL", "LOG", "RESET")


def _refusals(backing: RedisProcess | RedisClusterProcess) -> list[dict[str, Any]]:
    """Every ACL refusal Redis logged for Coord's user, on any node."""
    found = []
    for node in _nodes(backing):
        with node.client() as r:
            found += [e for e in r.acl_log() if e.get("username") == USER]
    return found


def _connections(backing: RedisProcess | RedisClusterProcess) -> dict[tuple[int, int], str]:
    """Every client connection, (node port, id) -> user, on every node (the asking one left out)."""
    found = {}
    for node in _nodes(backing):
        with node.client() as r:
            me = r.client_id()
            found.update(
                {(node.port, int(c["id"])): c["user"] for c in r.client_list() if int(c["id"]) != me}
            )
    return found


def _users_since(backing: RedisProcess | RedisClusterProcess, before: dict[tuple[int, int], str]) -> set[str]:
    """The users of the connections opened since ``before`` (the shared Redis has other clients)."""
    return {user for conn, user in _connections(backing).items() if conn not in before}


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def acl_backing(request: pytest.FixtureRequest) -> Iterator[RedisProcess | RedisClusterProcess]:
    """The shared Redis (single or cluster) with Coord's ACL user; the user is removed afterwards."""
    backing: RedisProcess | RedisClusterProcess = request.getfixturevalue(f"redis_{request.param}")
    if isinstance(backing, RedisClusterProcess):
        backing.flush()
    else:
        with backing.client() as r:
            r.flushall()
    _setuser(backing)
    yield backing
    for node in _nodes(backing):
        with node.client() as r:
            r.execute_command("ACL", "DELUSER", USER)  # which also closes its connections


def _as_user(url: str, user: str = USER, password: str | None = PASSWORD) -> str:
    userinfo = user if password is None else f"{user}:{password}"
    return url.replace("://", f"://{userinfo}@", 1)


# -- the rules ---------------------------------------------------------------------------------------


def test_every_command_of_every_script_is_in_the_acl_rules() -> None:
    root = Path(coord_server.__file__).parent
    used = set()
    for path in root.rglob("*.lua"):
        source = path.read_text()
        calls = _CALL.findall(source)
        assert len(calls) == len(re.findall(r"redis\.p?call", source)), f"{path}: a call not by name"
        for name, sub in calls:
            command = name.lower()
            used.add(f"{command}|{sub.lower()}" if command in _CONTAINERS else command)
    assert used, "no Lua found"
    granted = set(coord_acl.SCRIPT_COMMANDS)
    assert used - granted == set(), "scripts call these; add them to acl.py and docs/security.md"
    assert granted - used == set(), "no script calls these any more; take them out of the ACL rules"


def test_the_documented_rules_are_the_rules() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "security.md"
    assert " ".join(coord_acl.rules()) in page.read_text(), "docs/security.md shows other ACL rules"


def test_coord_runs_every_service_as_the_restricted_user(
    acl_backing: RedisProcess | RedisClusterProcess,
    start_coord: Callable[..., CoordThread],
    tmp_path: Path,
) -> None:
    cluster = isinstance(acl_backing, RedisClusterProcess)
    before = _connections(acl_backing)
    if cluster:
        # The password from a file (with the newline an editor leaves); only the user in the URL.
        secret = tmp_path / "redis-password"
        secret.write_text(PASSWORD + "\n")
        server = start_coord(
            _as_user(acl_backing.url, password=None), redis_cluster=True, redis_password_file=str(secret)
        )
    else:
        server = start_coord(_as_user(acl_backing.url))
        assert server.app is not None
        # The hot path is the hand-written pipe: it authenticates as the ACL user itself.
        assert isinstance(server.app.redis._executor, RespPipe)

    smoke.every_service(server.target)

    assert _refusals(acl_backing) == []
    assert _users_since(acl_backing, before) == {USER}, "every connection of Coord's is the ACL user's"


def test_the_pipe_authenticates_with_the_password_file(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread], tmp_path: Path
) -> None:
    _setuser(redis_single)
    before = _connections(redis_single)
    try:
        secret = tmp_path / "redis-password"
        secret.write_text(PASSWORD + "\n")
        server = start_coord(_as_user(redis_single.url, password=None), redis_password_file=str(secret))
        assert server.app is not None and isinstance(server.app.redis._executor, RespPipe)
        with Client(server.target) as client:
            assert client.cache.set("k", b"v").stored and client.cache.get("k").value == b"v"
        assert _users_since(redis_single, before) == {USER}
    finally:
        with redis_single.client() as r:
            r.execute_command("ACL", "DELUSER", USER)


def test_the_rules_refuse_what_coord_does_not_need(acl_backing: RedisProcess | RedisClusterProcess) -> None:
    node = _nodes(acl_backing)[0]
    slot_key = "coord:t:cache:{x}"
    if isinstance(acl_backing, RedisClusterProcess):  # a key this node serves, or MOVED hides NOPERM
        with node.client() as admin:
            owned = _slots_of(admin, node.port)
            for i in range(1000):
                slot_key = f"coord:t:cache:{{x{i}}}"
                if admin.execute_command("CLUSTER", "KEYSLOT", slot_key) in owned:
                    break
    with redis.Redis(port=node.port, username=USER, password=PASSWORD) as r:
        assert r.exists(slot_key) == 0  # allowed: a command of the rules on a coord:* key
        refused: list[Callable[[], Any]] = [
            r.flushall,
            lambda: r.keys("*"),
            lambda: r.config_get("*"),
            r.script_flush,
            r.dbsize,
            lambda: r.execute_command("MEMORY", "DOCTOR"),  # only MEMORY USAGE is granted
            lambda: r.memory_usage("outside:key"),  # and only on coord:* keys
            r.client_list,
            lambda: r.execute_command("ACL", "LIST"),
            lambda: r.get("outside:key"),  # a command of the rules, a key outside coord:*
            lambda: r.execute_command("APPEND", slot_key, "x"),  # a coord:* key, a command not granted
            lambda: r.publish("outside-channel", "x"),  # a channel outside coord:*
            lambda: r.eval("return redis.call('GET', KEYS[1])", 1, "outside:key"),  # a script's KEYS
        ]
        for attempt in refused:
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
        # What a script calls is checked against the rules too: its commands and the keys they touch.
        for script in (
            "return redis.call('FLUSHALL')",
            "return redis.call('APPEND', KEYS[1], 'x')",
            "return redis.call('GET', 'outside:key')",
            "return redis.call('PUBLISH', 'outside-channel', 'x')",
        ):
            with pytest.raises(redis.exceptions.ResponseError, match="user executing the script can't"):
                r.eval(script, 1, slot_key)
        pubsub = r.pubsub()
        try:
            with pytest.raises(redis.exceptions.NoPermissionError):
                pubsub.subscribe("outside-channel")
                pubsub.get_message(timeout=5)
        finally:
            pubsub.close()
    assert _refusals(acl_backing), "Redis logged the refusals in its ACL log"


def _slots_of(r: redis.Redis, port: int) -> set[int]:
    owned: set[int] = set()
    for start, end, master, *_ in r.execute_command("CLUSTER", "SLOTS"):
        if int(master[1]) == port:
            owned |= set(range(start, end + 1))
    return owned


# -- the password file -------------------------------------------------------------------------------


def test_password_file_loses_only_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(b"s3cret\r\n")
    assert read_password_file(str(secret)) == "s3cret"
    secret.write_bytes(b"two words \n")
    assert read_password_file(str(secret)) == "two words "


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), (b"", "is empty"), (b"\n", "is empty"), (b"\xff\xfe", "not UTF-8")],
)
def test_an_unusable_password_file_is_a_config_error_naming_it(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    secret = tmp_path / "missing-or-bad"
    if content is not None:
        secret.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as caught:
        RedisBackend.from_url(
            "redis://coord@127.0.0.1:1/0",
            cluster=False,
            timeout=1.0,
            security=RedisSecurity(password_file=str(secret)),
        )
    assert str(secret) in str(caught.value)


def test_an_unreadable_password_file_stops_the_server_with_status_2(tmp_path: Path) -> None:
    secret = tmp_path / "unreadable"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env.update(
        COORD_REDIS_URL="redis://coord@127.0.0.1:1/0",
        COORD_REDIS_PASSWORD_FILE=str(secret),
        COORD_LISTEN="127.0.0.1:0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "coord_server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"configuration error: COORD_REDIS_PASSWORD_FILE: cannot read {secret}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_password_in_the_url_and_a_file_is_a_config_error(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file")
    for url in ("redis://coord:in-url@127.0.0.1:1/0", "redis://coord@127.0.0.1:1/0?password=in-url"):
        settings = Settings(redis_url=url, redis_password_file=str(secret))
        with pytest.raises(ConfigError, match="COORD_REDIS_PASSWORD_FILE") as caught:
            settings.validate()
        assert "in-url" not in str(caught.value)
        with pytest.raises(ConfigError, match="COORD_REDIS_PASSWORD_FILE"):
            RedisBackend.from_url(url, cluster=False, timeout=1.0, security=RedisSecurity(str(secret)))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"redis_password_file": "/x"}, "COORD_REDIS_PASSWORD_FILE: needs COORD_REDIS_URL"),
        ({"redis_tls_ca": "/x"}, "COORD_REDIS_TLS_CA: needs COORD_REDIS_URL"),
        ({"redis_url": "redis://h:1", "redis_tls_ca": "/x"}, "COORD_REDIS_TLS_CA: needs a rediss://"),
        ({"redis_url": "rediss://h:1", "redis_tls_cert": "/x"}, "COORD_REDIS_TLS_KEY: .* go together"),
        ({"redis_url": "rediss://h:1", "redis_tls_key": "/x"}, "COORD_REDIS_TLS_CERT: .* go together"),
    ],
)
def test_redis_access_settings_are_checked(overrides: dict[str, str], message: str) -> None:
    # The embedded Redis is a private socket: a password or TLS file for it is a mistake, refused.
    with pytest.raises(ConfigError, match=message):
        replace(Settings(), **overrides).validate()


# -- TLS ---------------------------------------------------------------------------------------------


def test_tls_single_node_with_the_ca_alone_and_with_a_client_certificate(
    redis_tls_single: TlsRedisProcess, redis_tls_files: RedisTLSFiles, start_coord: Callable[..., CoordThread]
) -> None:
    with redis_tls_single.client() as r:
        r.flushall()
    for client_cert in (False, True):
        server = start_coord(redis_tls_single.url, **redis_tls_files.settings(client_cert=client_cert))
        assert server.app is not None
        # TLS is redis-py's (the coalescer), never the plaintext pipe.
        assert isinstance(server.app.redis._executor, Coalescer)
        smoke.every_service(server.target)
        server.stop()
        with redis_tls_single.client() as r:
            r.flushall()


@pytest.mark.cluster
def test_tls_cluster_with_a_client_certificate(
    redis_tls_cluster: TlsRedisClusterProcess,
    redis_tls_files: RedisTLSFiles,
    start_coord: Callable[..., CoordThread],
) -> None:
    redis_tls_cluster.flush()
    server = start_coord(redis_tls_cluster.url, redis_cluster=True, **redis_tls_files.settings())
    assert server.app is not None
    assert isinstance(server.app.redis._executor, Coalescer)
    smoke.every_service(server.target)

    # The cluster requires client certificates: without one, Redis ends the handshake.
    node = redis_tls_cluster.nodes[0]
    without = {
        k: v for k, v in redis_tls_files.redis_py().items() if k not in ("ssl_certfile", "ssl_keyfile")
    }
    with (
        pytest.raises(redis.exceptions.ConnectionError),
        redis.Redis(port=node.port, socket_timeout=2, **without) as r,
    ):
        r.ping()


def test_tls_checks_the_server_against_the_ca(redis_tls_single: TlsRedisProcess, tmp_path: Path) -> None:
    other = make_ca(tmp_path, "other")
    backend = RedisBackend.from_url(
        redis_tls_single.url, cluster=False, timeout=2.0, security=RedisSecurity(tls_ca=str(other.cert_path))
    )

    async def ping() -> None:
        try:
            await backend.ping()
        finally:
            await backend.close()

    with pytest.raises(BackendUnavailable):
        asyncio.run(ping())


@pytest.mark.parametrize("broken", ["ca", "cert", "key"])
def test_unusable_tls_files_are_a_config_error_naming_them(
    redis_tls_files: RedisTLSFiles, tmp_path: Path, broken: str
) -> None:
    files = {
        "tls_ca": str(redis_tls_files.ca.cert_path),
        "tls_cert": str(redis_tls_files.client.cert_path),
        "tls_key": str(redis_tls_files.client.key_path),
    }
    if broken == "ca":
        files["tls_ca"] = str(tmp_path / "no-such-ca.pem")
    elif broken == "cert":
        (tmp_path / "garbage.pem").write_text("not a certificate")
        files["tls_cert"] = str(tmp_path / "garbage.pem")
    else:
        files["tls_key"] = str(redis_tls_files.server.key_path)  # a key, but not the certificate's
    with pytest.raises(ConfigError) as caught:
        RedisBackend.from_url(
            "rediss://127.0.0.1:1/0", cluster=False, timeout=1.0, security=RedisSecurity(**files)
        )
    assert files[f"tls_{broken}"] in str(caught.value)
