"""COORD_CACHE_REDIS_URL: the cache on a Redis of its own, which may evict, beside the Redis that must
not (locks, sessions, events, rate limits).

The eviction check at start reads only the main Redis; health follows each Redis: the cache service
with its own, the others with the main one, the whole server ("") with both.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.lock.v1 import lock_pb2, lock_pb2_grpc
from coord_server.config import ConfigError, Settings

from ..conftest import CoordThread, RedisProcess, wait_for
from ..lock._util import dur

CACHE = "coord.cache.v1.CacheService"
LOCK = "coord.lock.v1.LockService"


def _status(channel: grpc.Channel, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status)


def test_the_cache_lives_on_its_own_redis_which_may_evict(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    main = redis_factory()
    lru = redis_factory(extra=("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"))
    # An evicting policy on the cache's Redis does not stop the server (only the main one's would).
    server = start_coord(main.url, cache_redis_url=lru.url)
    with grpc.insecure_channel(server.target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        cache.Set(cache_pb2.SetRequest(key="k", value=b"v", ttl=dur(60)), timeout=10)
        assert cache.Get(cache_pb2.GetRequest(key="k"), timeout=10).entry.value == b"v"
        locks = lock_pb2_grpc.LockServiceStub(channel)
        request = lock_pb2.AcquireRequest(name="L", mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=dur(30))
        grant = locks.Acquire(request, timeout=10)
        assert grant.acquired
    with main.client() as r:
        main_keys = [k.decode() for k in r.scan_iter("coord:*")]
    with lru.client() as r:
        cache_keys = [k.decode() for k in r.scan_iter("coord:*")]
    assert cache_keys and all(":cache:" in k for k in cache_keys), cache_keys
    assert main_keys and not any(":cache:" in k for k in main_keys), main_keys
    assert any(":lock:" in k for k in main_keys)


def test_health_follows_each_redis(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    main = redis_factory()
    own = redis_factory()
    server = start_coord(main.url, cache_redis_url=own.url, health_interval=0.2)
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    with grpc.insecure_channel(server.target) as channel:
        wait_for(lambda: _status(channel, "") == serving, "the server to serve")
        own.stop()
        wait_for(lambda: _status(channel, CACHE) == not_serving, "the cache to stop serving")
        assert _status(channel, LOCK) == serving  # the main Redis still answers
        assert _status(channel, "") == not_serving  # not all of the server is there
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            cache.Get(cache_pb2.GetRequest(key="k"), timeout=10)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        own.start()
        wait_for(lambda: _status(channel, "") == serving, "the server to serve again")
        assert _status(channel, CACHE) == serving


def test_cache_redis_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"COORD_CACHE_REDIS_URL: .* must start with"):
        Settings(cache_redis_url="http://cache:6379").validate()
    with pytest.raises(ConfigError, match="COORD_CACHE_REDIS_CLUSTER: needs COORD_CACHE_REDIS_URL"):
        Settings(cache_redis_cluster=True).validate()
    with pytest.raises(ConfigError, match="COORD_CACHE_REDIS_CLUSTER: a cluster seed"):
        Settings(cache_redis_url="unix:///tmp/cache.sock", cache_redis_cluster=True).validate()
    with pytest.raises(ConfigError, match="keep it only in the file") as refused:
        Settings(cache_redis_url="redis://u:hunter2@cache:6379", cache_redis_password_file="/x").validate()
    assert "hunter2" not in str(refused.value)
    Settings(cache_redis_url="rediss://cache:6380/0").validate()
