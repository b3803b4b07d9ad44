"""No Redis password reaches a log line, an error message or ``RedisBackend.description``: not one in
the URL's userinfo (an ``@`` in it included), not one given as a ``?password=`` option."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coord_client import Client
from coord_client.errors import CoordError
from coord_server.config import ConfigError, Settings
from coord_server.redact import redact_url, url_has_password
from coord_server.redis import RedisBackend
from coord_server.redis import acl as coord_acl

from ..conftest import CoordThread, RedisProcess

CANARY = "canary-7f3a"  # in every password below; must appear nowhere


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://coord:s3cr@t@127.0.0.1:6379/0", "redis://coord:***@127.0.0.1:6379/0"),
        ("redis://:pw@host:1", "redis://:***@host:1"),
        ("redis://coord@host:1/0?password=x&db=1", "redis://coord@host:1/0?db=1"),
        ("rediss://u:a%40b@host:1?ssl_password=k", "rediss://u:***@host:1"),
        ("unix:///run/redis.sock?password=y&db=2", "unix:///run/redis.sock?db=2"),
        ("unix://u:pw@/run/redis.sock", "unix://u:***@/run/redis.sock"),
        ("redis://coord@host:1/0?password=p@ss", "redis://coord@host:1/0"),
        # An unencoded / ? or # in the password: the host cannot be told apart, so nothing is shown.
        ("redis://:pa/ss@host:1", "redis://***"),
        ("redis://u:a@b?c=d@host:1", "redis://***"),
        ("redis://u:pa?ss@host:1", "redis://***"),
        ("redis://u:pa#ss@host:1", "redis://***"),
        ("redis://[::1:6379", "(an unreadable URL)"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_url_has_password() -> None:
    assert url_has_password("redis://u:p@h:1") and url_has_password("redis://h:1?password=p")
    assert not url_has_password("redis://u@h:1") and not url_has_password("redis://u:@h:1")
    assert not url_has_password("unix:///s.sock")


@pytest.mark.parametrize(
    "url",
    [
        f"redis://coord:{CANARY}@127.0.0.1:6379/0",
        f"redis://coord:x@{CANARY}@127.0.0.1:6379/0",
        f"redis://coord@127.0.0.1:6379/0?password={CANARY}",
    ],
)
def test_description_never_holds_the_password(url: str) -> None:
    for cluster in (False, True):
        description = RedisBackend.from_url(url, cluster=cluster, timeout=1.0).description
        assert CANARY not in description and "127.0.0.1:6379" in description


@pytest.mark.parametrize(
    "url",
    [
        f"http://coord:{CANARY}@127.0.0.1:1",  # not a Redis scheme (refused by the settings)
        f"redis://coord:{CANARY}@127.0.0.1:port/0",  # redis-py cannot parse it
    ],
)
def test_a_bad_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(redis_url=url).validate()  # the first one stops here
        RedisBackend.from_url(url, cluster=False, timeout=1.0)
    assert CANARY not in str(caught.value) and "coord" in str(caught.value)


@pytest.fixture
def acl_user(redis_single: RedisProcess) -> Iterator[Callable[[str], None]]:
    """``acl_user(password)``: Coord's ACL user on the shared Redis, removed afterwards."""

    def make(password: str) -> None:
        with redis_single.client() as r:
            r.execute_command("ACL", "SETUSER", "coord", "reset", "on", f">{password}", *coord_acl.rules())

    yield make
    with redis_single.client() as r:
        r.execute_command("ACL", "DELUSER", "coord")


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged: messages with their arguments, and tracebacks."""
    return "\n".join(
        [caplog.text, *(r.getMessage() for r in caplog.records), *(r.exc_text or "" for r in caplog.records)]
    )


@pytest.mark.parametrize("where", ["userinfo with @", "password option"])
def test_server_start_and_use_log_no_password(
    where: str,
    redis_single: RedisProcess,
    acl_user: Callable[[str], None],
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = f"p@ss-{CANARY}"
    acl_user(password)
    base = redis_single.url.removeprefix("redis://")
    if where.startswith("userinfo"):
        url = f"redis://coord:{password}@{base}"
    else:
        url = f"redis://coord@{base}?password={password}"
    caplog.set_level(logging.DEBUG)
    server = start_coord(url)
    assert server.app is not None
    assert CANARY not in server.app.redis.description and "coord" in server.app.redis.description
    with Client(server.target) as client:
        client.cache.set("k", b"v")
        assert client.cache.get("k").value == b"v"
    server.stop()
    logged = _logged(caplog)
    assert f"Redis: {server.app.redis.description}" in logged  # the start-up line names the user
    assert CANARY not in logged


def test_a_refused_password_is_not_logged_either(
    redis_single: RedisProcess,
    acl_user: Callable[[str], None],
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    acl_user("the-right-one")
    caplog.set_level(logging.DEBUG)
    server = start_coord(f"redis://coord:wr@ng-{CANARY}@{redis_single.url.removeprefix('redis://')}")
    with grpc.insecure_channel(server.target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    with Client(server.target) as client, pytest.raises(CoordError) as failed:
        client.cache.get("k", timeout=5)
    server.stop()
    logged = _logged(caplog)
    assert "Redis is unreachable" in logged
    assert CANARY not in logged and CANARY not in str(failed.value)
