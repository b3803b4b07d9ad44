"""Sentinels that ask for a password of their own, and Sentinel over TLS (``rediss+sentinel://``).

Each test runs a real primary and one real sentinel on 127.0.0.1 and serves Coord against the
sentinel: the sentinel's password comes from ``COORD_REDIS_SENTINEL_PASSWORD_FILE`` (never from the
URL, never to the master), and ``rediss+sentinel://`` speaks TLS to the sentinel and to the master
with the ``COORD_REDIS_TLS_*`` files.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import redis

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord_server.config import ConfigError, Settings
from coord_server.redis import RedisBackend
from coord_server.redis.security import RedisSecurity
from coord_server.sentinel_url import parse_sentinel_url

from ..conftest import (
    REDIS_SERVER,
    CoordThread,
    RedisProcess,
    RedisTLSFiles,
    TlsRedisProcess,
    free_port,
    wait_for,
)
from ..lock._util import dur

REDIS_SENTINEL = shutil.which("redis-sentinel")
SERVICE = "mymaster"
SENTINEL_SECRET = "sentinel-s3cret-Zq"


def _start_sentinel(folder: Path, lines: list[str]) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "sentinel.conf"  # rewritten by the sentinel itself
    conf.write_text(
        "bind 127.0.0.1\ndaemonize no\n"
        f"dir {folder}\nlogfile {folder / 'sentinel.log'}\n"
        "sentinel resolve-hostnames no\n" + "".join(line + "\n" for line in lines)
    )
    command = [REDIS_SENTINEL, str(conf)] if REDIS_SENTINEL else [REDIS_SERVER, str(conf), "--sentinel"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cache_round_trip(target: str) -> bytes:
    with grpc.insecure_channel(target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        cache.Set(cache_pb2.SetRequest(key="k", value=b"through the sentinel", ttl=dur(60)), timeout=10)
        return bytes(cache.Get(cache_pb2.GetRequest(key="k"), timeout=10).entry.value)


# -- the rules --------------------------------------------------------------------------------------


def test_a_rediss_sentinel_url_asks_for_tls() -> None:
    assert parse_sentinel_url("rediss+sentinel://h1:26379/mymaster").tls
    assert not parse_sentinel_url("redis+sentinel://h1:26379/mymaster").tls


def test_sentinel_credentials_need_a_sentinel_url(tmp_path: Path) -> None:
    secret = tmp_path / "sentinel-password"
    secret.write_text(SENTINEL_SECRET + "\n")
    with pytest.raises(ConfigError, match="COORD_REDIS_SENTINEL_PASSWORD_FILE: needs a redis\\+sentinel"):
        Settings(redis_url="redis://127.0.0.1:6379/0", redis_sentinel_password_file=str(secret)).validate()
    with pytest.raises(ConfigError, match="COORD_REDIS_SENTINEL_USERNAME"):
        Settings(redis_url="redis://127.0.0.1:6379/0", redis_sentinel_username="watcher").validate()
    Settings(redis_url="redis+sentinel://h1/mymaster", redis_sentinel_password_file=str(secret)).validate()
    # TLS files go with rediss+sentinel:// as with rediss://, not with a plain Sentinel URL.
    Settings(redis_url="rediss+sentinel://h1/mymaster", redis_tls_ca=str(secret)).validate()
    with pytest.raises(ConfigError, match="COORD_REDIS_TLS_CA: needs a rediss://"):
        Settings(redis_url="redis+sentinel://h1/mymaster", redis_tls_ca=str(secret)).validate()


def test_the_sentinel_password_goes_to_the_sentinels_only(tmp_path: Path) -> None:
    secret = tmp_path / "sentinel-password"
    secret.write_text(SENTINEL_SECRET + "\n")
    backend = RedisBackend.from_url(
        "redis+sentinel://coord:master-pw@127.0.0.1:1/mymaster",
        cluster=False,
        timeout=1.0,
        security=RedisSecurity(sentinel_password_file=str(secret), sentinel_username="watcher"),
    )
    pool = backend._client.connection_pool  # type: ignore[union-attr]
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == ("coord", "master-pw")
    [sentinel] = pool.sentinel_manager.sentinels
    options = sentinel.connection_pool.connection_kwargs
    assert (options["username"], options["password"]) == ("watcher", SENTINEL_SECRET)
    assert SENTINEL_SECRET not in backend.description


# -- real sentinels ------------------------------------------------------------------------------


@pytest.fixture
def protected_sentinel(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A primary and a sentinel that asks for SENTINEL_SECRET; yields (url, sentinel port)."""
    primary = RedisProcess(tmp_path / "primary").start()
    port = free_port()
    proc = _start_sentinel(
        tmp_path / "sentinel",
        [
            f"port {port}",
            f"requirepass {SENTINEL_SECRET}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1",
        ],
    )
    try:

        def ready() -> bool:
            try:
                with redis.Redis(port=port, password=SENTINEL_SECRET, socket_timeout=1.0) as r:
                    return r.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE) is not None
            except redis.RedisError:
                return False

        wait_for(ready, "the sentinel to watch the primary")
        yield f"redis+sentinel://127.0.0.1:{port}/{SERVICE}", port
    finally:
        _stop(proc)
        primary.stop()


def test_a_sentinel_with_a_password_is_reached_with_the_password_file(
    protected_sentinel: tuple[str, int], start_coord: Callable[..., CoordThread], tmp_path: Path
) -> None:
    url, _ = protected_sentinel
    secret = tmp_path / "sentinel-password"
    secret.write_text(SENTINEL_SECRET + "\n")
    server = start_coord(url, redis_sentinel_password_file=str(secret))
    assert _cache_round_trip(server.target) == b"through the sentinel"


def test_without_the_sentinel_password_calls_are_unavailable_and_say_nothing_secret(
    protected_sentinel: tuple[str, int],
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, _ = protected_sentinel
    caplog.set_level(logging.DEBUG)
    server = start_coord(url)
    with grpc.insecure_channel(server.target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            cache.Get(cache_pb2.GetRequest(key="k"), timeout=10)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
    assert "a sentinel refused the credentials" in (failure.value.details() or ""), failure.value.details()
    assert SENTINEL_SECRET not in (failure.value.details() or "")
    assert SENTINEL_SECRET not in caplog.text


@pytest.fixture
def tls_sentinel(tmp_path: Path, redis_tls_files: RedisTLSFiles) -> Iterator[str]:
    """A TLS-only primary and a TLS-only sentinel that reaches it over TLS; yields the URL."""
    tls = redis_tls_files
    primary = TlsRedisProcess(tmp_path / "primary", tls).start()
    port = free_port()
    files = [
        f"tls-cert-file {tls.server.cert_path}",
        f"tls-key-file {tls.server.key_path}",
        f"tls-ca-cert-file {tls.ca.cert_path}",
    ]
    proc = _start_sentinel(
        tmp_path / "sentinel",
        ["port 0", f"tls-port {port}", *files, "tls-replication yes", "tls-auth-clients optional",
         f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1"],
    )  # fmt: skip
    try:

        def ready() -> bool:
            try:
                with redis.Redis(port=port, socket_timeout=1.0, **tls.redis_py()) as r:
                    return r.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE) is not None
            except redis.RedisError:
                return False

        wait_for(ready, "the TLS sentinel to watch the primary")
        yield f"rediss+sentinel://127.0.0.1:{port}/{SERVICE}"
    finally:
        _stop(proc)
        primary.stop()


def test_rediss_sentinel_speaks_tls_to_the_sentinel_and_the_master(
    tls_sentinel: str, redis_tls_files: RedisTLSFiles, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(tls_sentinel, **redis_tls_files.settings())
    assert _cache_round_trip(server.target) == b"through the sentinel"
