"""The asyncio APIs' one-call methods are the sync ones (``_call.awaiting``): on an AsyncClient they
return an awaitable, on a Client the result itself, and bad arguments raise at the call."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from coord_client import AsyncClient, Client, Entry
from coord_client.cache import AsyncCacheAPI, CacheAPI
from tests.conftest import CoordUnderTest


def test_one_definition_serves_both_apis(coord_single: CoordUnderTest) -> None:
    assert AsyncCacheAPI.get is CacheAPI.get  # written once, in the sync API

    async def main() -> None:
        async with AsyncClient(coord_single.target, timeout=5) as client:
            pending = client.cache.get("k")
            assert inspect.isawaitable(pending)
            entry = await pending
            assert isinstance(entry, Entry) and not entry.found

            stored = client.cache.set("k", b"v", ttl=60)
            assert inspect.isawaitable(stored)
            assert (await stored).stored
            assert (await client.cache.get("k")).value == b"v"

            nothing_to_send = client.cache.get_many([])  # answered without a call, still awaitable
            assert inspect.isawaitable(nothing_to_send)
            assert await nothing_to_send == []

            # Arguments are checked at the call, before a coroutine exists (none is left un-awaited).
            with pytest.raises(ValueError, match="exactly one key"):
                client.cache.delete("a", "b", if_version=1)

    asyncio.run(main())

    with Client(coord_single.target, timeout=5) as client:
        entry = client.cache.get("k")  # the sync path returns the result itself
        assert not inspect.isawaitable(entry)
        assert isinstance(entry, Entry) and entry.value == b"v"
        with pytest.raises(ValueError, match="exactly one key"):
            client.cache.delete("a", "b", if_version=1)
