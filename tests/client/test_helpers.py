"""get_or_set and the cached decorator, sync and async."""

from __future__ import annotations

import asyncio
import pickle
import threading

from coord_client import AsyncClient, Client


def test_get_or_set_fills_once(coord):
    calls: list[int] = []

    def fill() -> str:
        calls.append(1)
        return "computed"

    with Client(coord.target) as client:
        assert client.cache.get_or_set("k", fill, ttl=60) == b"computed"
        assert client.cache.get_or_set("k", fill, ttl=60) == b"computed"
        assert calls == [1]
        entry = client.cache.get("k")
        assert entry.value == b"computed" and entry.expire_time is not None


def test_concurrent_fillers_converge_on_one_value(coord_single):
    barrier = threading.Barrier(8)
    results: list[bytes] = []

    with Client(coord_single.target) as client:

        def worker(n: int) -> None:
            def fill() -> bytes:
                barrier.wait(10)  # every worker has missed before any of them writes
                return f"value-{n}".encode()

            results.append(client.cache.get_or_set("k", fill, lease=False))  # every one fills

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        stored = client.cache.get("k").value
    assert len(results) == 8 and set(results) == {stored}


def test_cached_calls_the_function_once_per_key(coord):
    calls: list[int] = []
    with Client(coord.target) as client:

        @client.cache.cached(ttl=60, key="square:{n}")
        def square(n: int) -> dict[str, int]:
            calls.append(n)
            return {"n": n, "square": n * n}

        assert square(3) == {"n": 3, "square": 9}
        assert square(3) == {"n": 3, "square": 9}
        assert square(n=3) == {"n": 3, "square": 9}
        assert square(4)["square"] == 16
        assert calls == [3, 4]
        assert square.key_for(3) == "square:3" and square.__name__ == "square"
        assert client.cache.get("square:3").found

        assert square.invalidate(3)
        assert square(3)["square"] == 9
        assert calls == [3, 4, 3]


def test_cached_default_key_and_custom_serializer(coord_single):
    calls: list[tuple[int, ...]] = []
    with Client(coord_single.target) as client:

        @client.cache.cached(ttl=30, serializer=pickle)
        def span(*values: int) -> range:
            calls.append(values)
            return range(min(values), max(values))

        assert span(1, 5) == range(1, 5)
        assert span(1, 5) == range(1, 5)
        assert span(2, 5) == range(2, 5)
        assert calls == [(1, 5), (2, 5)]
        assert span.key_for(1, 5) != span.key_for(2, 5)
        assert span.key_for(1, 5).startswith("cached:tests.client.test_helpers.")


def test_async_get_or_set_and_cached(coord):
    calls: list[str] = []

    async def main() -> None:
        async with AsyncClient(coord.target) as client:

            async def fill() -> bytes:
                calls.append("fill")
                return b"v"

            assert await client.cache.get_or_set("k", fill, ttl=60) == b"v"
            assert await client.cache.get_or_set("k", lambda: b"other") == b"v"  # sync fill is fine too

            @client.cache.cached(ttl=60, key=lambda user_id: f"user:{user_id}")
            async def load_user(user_id: int) -> dict[str, object]:
                calls.append(f"load {user_id}")
                return {"id": user_id, "name": f"user {user_id}"}

            assert await load_user(7) == {"id": 7, "name": "user 7"}
            assert await load_user(7) == {"id": 7, "name": "user 7"}
            assert await load_user.invalidate(7)
            assert not await load_user.invalidate(7)
            assert await load_user(7) == {"id": 7, "name": "user 7"}

    asyncio.run(main())
    assert calls == ["fill", "load 7", "load 7"]
