"""Tags in the Python client and coordctl: ``set(..., tags=...)``, ``batch_set`` with tagged items,
``invalidate_tags`` (sync and asyncio), near caches flushed by another client's invalidation and at once
by the client's own, argument checks, and ``coordctl cache invalidate-tags`` — against single-node Redis
and Redis Cluster."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from coord_client import AsyncClient, Client, InvalidArgument, NearCache, SetItem

from ..conftest import CoordUnderTest, wait_for
from .test_cli import coordctl


@pytest.fixture
def client(coord: CoordUnderTest) -> Iterator[Client]:
    with Client(coord.target, timeout=5) as c:
        yield c


def test_set_with_tags_then_invalidate(client: Client) -> None:
    cache = client.cache
    assert cache.set("user:1", b"alice", ttl=60, tags=["users", "user:1"]).stored
    assert cache.set("user:2", "bob", ttl=60, tags=("users",)).stored
    assert cache.set("post:1", b"hi", ttl=60, tags=["posts"]).stored
    assert [e.found for e in cache.batch_get(["user:1", "user:2", "post:1"])] == [True, True, True]
    assert cache.invalidate_tags("users", "users") == 1
    assert [e.found for e in cache.batch_get(["user:1", "user:2", "post:1"])] == [False, False, True]
    assert not cache.get("user:1").found
    assert cache.set("user:1", b"alice2", tags=["users"]).stored
    assert cache.get("user:1").value == b"alice2"


def test_batch_set_items_carry_their_tags(client: Client) -> None:
    cache = client.cache
    results = cache.batch_set(
        [SetItem("a", b"1", tags=["x"]), SetItem("b", b"2"), SetItem("c", b"3", tags=["x", "y"])]
    )
    assert all(r.stored for r in results)
    assert cache.invalidate_tags("x") == 1
    assert [e.found for e in cache.batch_get(["a", "b", "c"])] == [False, True, False]


def test_arguments_are_checked_before_sending(client: Client) -> None:
    with pytest.raises(ValueError, match="at least one tag"):
        client.cache.invalidate_tags()
    with pytest.raises(TypeError, match="single str"):
        client.cache.set("k", b"v", tags="users")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tags\\[1\\]"):
        client.cache.invalidate_tags("ok", 7)  # type: ignore[arg-type]


def test_the_server_refuses_bad_tags_naming_the_field(client: Client) -> None:
    with pytest.raises(InvalidArgument) as too_many:
        client.cache.set("k", b"v", tags=[f"t{i}" for i in range(9)])
    assert too_many.value.metadata["field"] == "tags"
    with pytest.raises(InvalidArgument) as empty:
        client.cache.invalidate_tags("ok", "")
    assert empty.value.metadata["field"] == "tags[1]"


def test_asyncio_client(coord: CoordUnderTest) -> None:
    async def main() -> None:
        async with AsyncClient(coord.target, timeout=5) as client:
            cache = client.cache
            assert (await cache.set("k", b"v", ttl=60, tags=["t"])).stored
            assert (await cache.get("k")).found
            assert await cache.invalidate_tags("t", "u") == 2
            assert not (await cache.get("k")).found
            with pytest.raises(ValueError):
                await cache.invalidate_tags()

    asyncio.run(main())


def test_near_caches_are_flushed_by_any_clients_invalidation(coord: CoordUnderTest, client: Client) -> None:
    client.cache.set("k", b"v", ttl=60, tags=["t"])
    near = NearCache()
    with Client(coord.target, timeout=5, near_cache=near) as cached:
        wait_for(lambda: near.ready, "the near cache's stream to be ready")
        assert cached.cache.get("k").found
        assert cached.cache.get("k").found and near.stats.hits == 1
        client.cache.invalidate_tags("t")  # another client: the server flushes the near cache
        wait_for(lambda: near.stats.flushes >= 1, "the flush")
        assert not cached.cache.get("k").found

        client.cache.set("k", b"v2", ttl=60, tags=["t"])
        wait_for(lambda: cached.cache.get("k").found, "the new value")
        assert cached.cache.get("k").value == b"v2"
        # The client's own invalidation: its near cache is dropped before the call returns.
        cached.cache.invalidate_tags("t")
        assert not cached.cache.get("k").found


def test_near_cache_of_an_async_client_is_dropped_by_its_own_invalidation(coord: CoordUnderTest) -> None:
    async def main() -> None:
        near = NearCache()
        async with AsyncClient(coord.target, timeout=5, near_cache=near) as client:
            await client.cache.set("k", b"v", ttl=60, tags=["t"])
            for _ in range(200):
                if near.ready:
                    break
                await asyncio.sleep(0.05)
            assert near.ready
            assert (await client.cache.get("k")).found
            assert (await client.cache.get("k")).found
            await client.cache.invalidate_tags("t")
            assert not (await client.cache.get("k")).found

    asyncio.run(main())


def test_coordctl_set_with_tags_and_invalidate_tags(coord_single: CoordUnderTest) -> None:
    def ctl(*args: str):  # type: ignore[no-untyped-def]
        return coordctl("--target", coord_single.target, *args)

    assert ctl("cache", "set", "a", "1", "--tag", "x", "--tag", "y").returncode == 0
    assert ctl("cache", "set", "b", "2", "--tag", "y").returncode == 0
    done = ctl("cache", "invalidate-tags", "x")
    assert (done.returncode, done.stdout) == (0, b"invalidated 1 tag\n"), done.stderr
    assert ctl("cache", "get", "a").returncode == 1
    assert ctl("cache", "get", "b").returncode == 0
    as_json = ctl("--json", "cache", "invalidate-tags", "y", "z", "y")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == {"tag_count": 2}
    assert ctl("cache", "get", "b").returncode == 1
    refused = ctl("cache", "invalidate-tags", "")
    assert refused.returncode != 0 and b"tags[0]" in refused.stderr
