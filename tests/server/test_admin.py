"""AdminService.GetStats and `coordctl stats`: Redis figures, exact key counts per tenant and
service, memory estimates, settings without secrets, and the admin permission."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from coord_client import Client
from coord_client.errors import PermissionDenied
from coord_server.auth.identity import Identity
from tests.conftest import CoordThread, CoordUnderTest, RedisProcess
from tests.security.authkit import api_key, new_key, write_auth


def _count(under_test: CoordUnderTest, pattern: str) -> int:
    """Keys matching ``pattern`` on every node, counted by the test itself (SCAN, every master)."""
    client = under_test.redis()
    try:
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def _by_place(stats) -> dict[tuple[str, str], object]:
    return {(k.tenant, k.service): k for k in stats.keys}


def test_get_stats_counts_every_key_and_reports_redis(coord: CoordUnderTest) -> None:
    with Client(coord.target, timeout=30) as client:
        for i in range(37):
            client.cache.set(f"item-{i}", b"x" * 100, ttl=600)
        for i in range(5):
            assert client.lock.acquire(f"job-{i}", ttl=60)
        stats = client.admin.get_stats(scan_budget=10)

    assert stats.scan.complete
    assert stats.scan.nodes == (3 if coord.kind == "cluster" else 1)
    found = _by_place(stats)
    cache = found["default", "cache"]
    assert cache.keys == 37  # one HASH per entry, no tombstone without a Delete
    lock = found["default", "lock"]
    assert lock.keys == _count(coord, "coord:default:lock:*") > 0
    assert stats.scan.scanned_keys == _count(coord, "coord:*")
    # The sample measured every key (fewer than 200), and an entry of 100 bytes takes more than that.
    assert cache.sampled_keys == 37
    assert cache.sampled_bytes > 37 * 100
    assert cache.estimated_bytes == cache.sampled_bytes

    redis = stats.redis
    assert redis.mode == coord.kind
    assert redis.version.count(".") == 2
    assert redis.eviction_policy == "noeviction"
    assert len(redis.nodes) == stats.scan.nodes
    assert all(node.used_memory > 0 and node.version == redis.version for node in redis.nodes)
    assert redis.used_memory == sum(node.used_memory for node in redis.nodes)

    server = stats.server
    assert server.version
    assert server.uptime >= 0
    settings = dict(server.settings)
    assert settings["COORD_REDIS_CLUSTER"] == ("1" if coord.kind == "cluster" else "0")
    assert settings["COORD_ALLOW_EVICTION"] == "0"


def test_a_small_sample_estimates_from_the_sample(coord_single: CoordUnderTest) -> None:
    with Client(coord_single.target, timeout=30) as client:
        for i in range(30):
            client.cache.set(f"k{i}", b"v" * 50, ttl=600)
        stats = client.admin.get_stats(sample_size=10, scan_budget=10)
    cache = _by_place(stats)["default", "cache"]
    assert (cache.keys, cache.sampled_keys) == (30, 10)
    assert cache.estimated_bytes == round(cache.sampled_bytes / 10 * 30)


def test_settings_hold_no_secret(
    redis_factory: Callable[..., RedisProcess], tmp_path: Path, start_coord: Callable[..., CoordThread]
) -> None:
    secret = "s3cret-never-shown"
    private = redis_factory()  # its own: the password is never taken off again (it stops by pid)
    with private.client() as r:
        r.config_set("requirepass", secret)
    password_file = tmp_path / "redis-password"
    password_file.write_text(secret)
    via_url = private.url.replace("redis://", f"redis://:{secret}@")
    for server in (start_coord(via_url), start_coord(private.url, redis_password_file=str(password_file))):
        with Client(server.target, timeout=30) as client:
            stats = client.admin.get_stats()
        assert secret not in json.dumps(stats.to_json())
        assert dict(stats.server.settings)["COORD_REDIS_URL"].startswith("redis://")
        assert all(secret not in node.address for node in stats.redis.nodes)
    assert dict(stats.server.settings)["COORD_REDIS_PASSWORD_FILE"] == str(password_file)


def test_the_admin_permission_is_needed_and_star_does_not_grant_it(
    redis_single: RedisProcess, tmp_path: Path, start_coord: Callable[..., CoordThread]
) -> None:
    star, star_digest = new_key()
    admin, admin_digest = new_key()
    method, method_digest = new_key()
    path = write_auth(
        tmp_path / "auth.yaml",
        api_keys=[
            api_key("star", star_digest, "a", ["*"]),
            api_key("admin", admin_digest, "ops", ["admin"]),
            api_key("one", method_digest, "ops", ["admin.GetStats", "cache"]),
        ],
    )
    server = start_coord(redis_single.url, auth_file=str(path))
    with Client(server.target, timeout=30, token=star) as client:
        client.cache.set("mine", b"1", ttl=60)  # "*" still grants every data service
        with pytest.raises(PermissionDenied) as refused:
            client.admin.get_stats()
        assert refused.value.metadata == {"permission": "admin.GetStats"}
    for key in (admin, method):
        with Client(server.target, timeout=30, token=key) as client:
            stats = client.admin.get_stats(scan_budget=10)
        # Server-wide: the admin of tenant "ops" sees tenant "a"'s keys too.
        assert _by_place(stats)["a", "cache"].keys >= 1


def test_identity_permits_admin_only_when_named() -> None:
    def who(*allow: str) -> Identity:
        return Identity("x", "t", frozenset(allow))

    assert not who("*").permits("admin", "admin.GetStats")
    assert who("*").permits("cache", "cache.Get")
    assert who("admin").permits("admin", "admin.GetStats")
    assert who("admin.GetStats").permits("admin", "admin.GetStats")


def _coordctl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "coord_client.cli", *args],
        capture_output=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )


def test_coordctl_stats_prints_a_table_and_json(coord_single: CoordUnderTest) -> None:
    with Client(coord_single.target, timeout=30) as client:
        for i in range(3):
            client.cache.set(f"c{i}", b"v", ttl=600)
    done = _coordctl("--target", coord_single.target, "stats", "--settings")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "maxmemory-policy noeviction" in text
    assert "(single)" in text
    row = next(
        line.split() for line in text.splitlines() if line.startswith("default ") and " cache " in line
    )
    assert row[:3] == ["default", "cache", "3"]
    assert "complete" in text
    assert "COORD_REDIS_TIMEOUT" in text

    for args in (("--json", "stats"), ("stats", "--json")):
        done = _coordctl("--target", coord_single.target, *args)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["redis"]["mode"] == "single"
        assert data["scan"]["complete"] is True
        assert {"tenant": "default", "service": "cache"}.items() <= data["keys"][0].items()
        assert data["keys"][0]["keys"] == 3
        assert data["server"]["settings"]["COORD_ALLOW_EVICTION"] == "0"


def test_get_stats_refuses_a_budget_over_the_limit(coord_single: CoordUnderTest) -> None:
    from coord_client.errors import InvalidArgument

    with Client(coord_single.target, timeout=30) as client, pytest.raises(InvalidArgument):
        client.admin.get_stats(scan_budget=31)


def test_get_stats_runs_as_the_restricted_acl_user(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    from coord_server.redis import acl

    private = redis_factory()
    with private.client() as r:
        r.execute_command("ACL", "SETUSER", "coord", "reset", "on", ">pw", *acl.rules())
        r.set("other:app:key", b"not coord's")  # outside coord:*: neither counted nor measured
    server = start_coord(private.url.replace("://", "://coord:pw@", 1))
    with Client(server.target, timeout=30) as client:
        client.cache.set("k", b"v", ttl=60)
        stats = client.admin.get_stats()
    assert [(k.tenant, k.service, k.keys, k.sampled_keys) for k in stats.keys] == [("default", "cache", 1, 1)]
    assert stats.scan.complete and stats.scan.scanned_keys == 1
    assert stats.redis.eviction_policy == "noeviction"
    with private.client() as r:
        assert r.execute_command("ACL", "LOG") == []  # nothing Coord sent was refused
