"""Prefix invalidation in the Python client and coordctl: ``invalidate_prefix`` (sync and asyncio), a
near cache dropped at once by the client's own call, the server's refusals as typed errors, and
``coordctl cache invalidate-prefix`` — against single-node Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from coord_client import AsyncClient, Client, InvalidArgument, NearCache

from ..conftest import CoordUnderTest, wait_for
from .test_cli import coordctl


@pytest.fixture
def client(coord: CoordUnderTest) -> Iterator[Client]:
    with Client(coord.target, timeout=5) as c:
        yield c


def test_invalidate_prefix(client: Client) -> None:
    cache = client.cache
    for key in ("user:42:name", "user:42:cart:1", "user:420:name"):
        assert cache.set(key, b"v", ttl=60).stored
    assert cache.invalidate_prefix("user:42:") is None
    found = [e.found for e in cache.batch_get(["user:42:name", "user:42:cart:1", "user:420:name"])]
    assert found == [False, False, True]
    assert cache.set("user:42:name", b"v2", ttl=60).stored
    assert cache.get("user:42:name").value == b"v2"


def test_bad_prefixes_raise_invalid_argument_naming_the_field(client: Client) -> None:
    for prefix in ("user:42", "u:", ""):
        with pytest.raises(InvalidArgument) as refused:
            client.cache.invalidate_prefix(prefix)
        assert refused.value.metadata["field"] == "prefix"
    with pytest.raises(TypeError, match="prefix must be a str"):
        client.cache.invalidate_prefix(b"user:")  # type: ignore[arg-type]


def test_asyncio_client_and_its_near_cache(coord: CoordUnderTest) -> None:
    async def main() -> None:
        near = NearCache()
        async with AsyncClient(coord.target, timeout=5, near_cache=near) as client:
            await client.cache.set("user:42:name", b"v", ttl=60)
            for _ in range(200):
                if near.ready:
                    break
                await asyncio.sleep(0.05)
            assert near.ready
            assert (await client.cache.get("user:42:name")).found
            assert (await client.cache.get("user:42:name")).found
            await client.cache.invalidate_prefix("user:42:")  # its own call: dropped before it returns
            assert not (await client.cache.get("user:42:name")).found

    asyncio.run(main())


def test_near_caches_are_flushed_by_another_clients_invalidation(
    coord: CoordUnderTest, client: Client
) -> None:
    client.cache.set("user:42:name", b"v", ttl=60)
    near = NearCache()
    with Client(coord.target, timeout=5, near_cache=near) as cached:
        wait_for(lambda: near.ready, "the near cache's stream to be ready")
        assert cached.cache.get("user:42:name").found
        client.cache.invalidate_prefix("user:42:")
        wait_for(lambda: near.stats.flushes >= 1, "the flush")
        assert not cached.cache.get("user:42:name").found


def test_coordctl_invalidate_prefix(coord_single: CoordUnderTest) -> None:
    def ctl(*args: str):  # type: ignore[no-untyped-def]
        return coordctl("--target", coord_single.target, *args)

    assert ctl("cache", "set", "user:7:name", "x").returncode == 0
    done = ctl("cache", "invalidate-prefix", "user:7:")
    assert (done.returncode, done.stdout) == (0, b"invalidated user:7:\n"), done.stderr
    assert ctl("cache", "get", "user:7:name").returncode == 1
    as_json = ctl("--json", "cache", "invalidate-prefix", "user:7:")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == {"prefix": "user:7:"}
    refused = ctl("cache", "invalidate-prefix", "user:7")
    assert refused.returncode != 0 and b"prefix" in refused.stderr
