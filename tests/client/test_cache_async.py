"""Every AsyncCacheAPI method through AsyncClient, against single-node Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from coord_client import AsyncClient, DeleteOutcome, SetItem, SetOutcome


def test_every_method(coord):
    async def main() -> None:
        async with AsyncClient(coord.target, timeout=5) as client:
            cache = client.cache
            assert not (await cache.get("k")).found

            first = await cache.set("k", "v1", ttl=60)
            assert first.stored
            hit = await cache.get("k")
            assert (hit.value, hit.version) == (b"v1", first.version)
            assert hit.expire_time and first.expire_time
            assert abs((hit.expire_time - first.expire_time).total_seconds()) < 0.01

            exists = await cache.set("k", b"x", if_absent=True)
            assert exists.outcome is SetOutcome.ALREADY_EXISTS
            absent = await cache.set("nope", b"x", if_present=True)
            assert absent.outcome is SetOutcome.NOT_FOUND
            stale = await cache.set("k", b"x", if_version=first.version + 1)
            assert stale.outcome is SetOutcome.VERSION_MISMATCH
            cas = await cache.set("k", b"v2", if_version=first.version)
            assert cas.stored and cas.version > first.version

            results = await cache.batch_set([SetItem("a", b"1"), SetItem("k", b"x", if_absent=True)], ttl=30)
            assert [r.outcome for r in results] == [SetOutcome.STORED, SetOutcome.ALREADY_EXISTS]
            assert await cache.set_many({}) == []

            entries = await cache.batch_get(["a", "missing", "k"])
            assert [(e.key, e.found, e.value) for e in entries] == [
                ("a", True, b"1"),
                ("missing", False, b""),
                ("k", True, b"v2"),
            ]
            assert await cache.get_many([]) == []

            counter = await cache.increment("n", 10, ttl=timedelta(seconds=60))
            assert (counter.value, counter.created) == (10, True)
            assert (await cache.increment("n", -3)).value == 7

            touched = await cache.touch("k", 3600)
            assert touched.found and touched.expire_time is not None
            assert not (await cache.touch("missing", 5)).found

            mismatch = await cache.delete("k", if_version=1)
            assert mismatch.results[0].outcome is DeleteOutcome.VERSION_MISMATCH
            deleted = await cache.delete("a", "k", "missing")
            assert deleted.deleted_count == 2
            assert [r.outcome for r in deleted.results][-1] is DeleteOutcome.NOT_FOUND

    asyncio.run(main())


def test_concurrent_calls_share_one_channel(coord):
    async def main() -> list[int]:
        async with AsyncClient(coord.target) as client:
            results = await asyncio.gather(*(client.cache.increment("n") for _ in range(50)))
            return sorted(r.value for r in results)

    assert asyncio.run(main()) == list(range(1, 51))
