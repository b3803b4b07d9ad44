"""Retries: idempotent calls ride out a short Redis outage; writes are never sent twice.

Each test runs a private Coord on a private redis-server. The retry hook restarts Redis when a
retry is announced, so the outage lasts exactly one failed attempt, without sleeping in tests.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from coord_client import NO_RETRY, AsyncClient, Client, RetryEvent, RetryPolicy, Unavailable
from coord_client._base import RETRIED_METHODS, SERVICE_CONFIG, channel_options

_AOF = ("--appendonly", "yes", "--appendfsync", "always")


@pytest.fixture
def outage(redis_factory, start_coord):
    """(backing redis, coord server, retry events, a policy whose hook restarts a stopped redis)."""
    backing = redis_factory(extra=_AOF)
    server = start_coord(backing.url)
    events: list[RetryEvent] = []

    def on_retry(event: RetryEvent) -> None:
        events.append(event)
        if backing.proc is None:
            backing.start()

    return backing, server, events, RetryPolicy(on_retry=on_retry)


def test_get_is_retried_across_a_redis_outage(outage):
    backing, server, events, policy = outage
    with Client(server.target, timeout=15, retry=policy) as client:
        client.cache.set("k", b"v")
        backing.stop()
        entry = client.cache.get("k")
    assert entry.found and entry.value == b"v"
    first = events[0]
    assert first.method == "/coord.cache.v1.CacheService/Get" and first.attempt == 1
    assert first.error.code is grpc.StatusCode.UNAVAILABLE
    assert first.error.reason == "BACKEND_UNAVAILABLE"
    assert (
        first.error.retry_after is not None and first.delay >= first.error.retry_after
    )  # RetryInfo honoured


def test_async_batch_get_and_touch_are_retried(outage):
    backing, server, events, policy = outage

    async def main() -> None:
        async with AsyncClient(server.target, timeout=15, retry=policy) as client:
            await client.cache.set("k", b"v")
            backing.stop()
            entries = await client.cache.batch_get(["k"])
            assert entries[0].value == b"v"
            backing.stop()
            assert (await client.cache.touch("k", 60)).found

    asyncio.run(main())
    assert {e.method.rsplit("/", 1)[1] for e in events} == {"BatchGet", "Touch"}


def test_writes_are_never_retried(outage):
    backing, server, events, policy = outage
    with Client(server.target, timeout=15, retry=policy) as client:
        assert client.cache.increment("n").value == 1
        backing.stop()
        with pytest.raises(Unavailable) as info:
            client.cache.increment("n")
        assert info.value.retry_after is not None  # the server allows a retry; the client must not
        with pytest.raises(Unavailable):
            client.cache.set("k", b"v", if_absent=True)
        with pytest.raises(Unavailable):
            client.cache.delete("k")
        assert events == []
        backing.start()
        assert client.cache.increment("n").value == 2


def test_async_increment_is_not_retried(outage):
    backing, server, events, policy = outage

    async def main() -> None:
        async with AsyncClient(server.target, timeout=15, retry=policy) as client:
            await client.cache.increment("n")
            backing.stop()
            with pytest.raises(Unavailable):
                await client.cache.increment("n")

    asyncio.run(main())
    assert events == []


def test_no_retry_policy_turns_retries_off(outage):
    backing, server, _, _ = outage
    seen: list[RetryEvent] = []
    with Client(server.target, retry=NO_RETRY.with_hook(seen.append)) as client:
        backing.stop()
        with pytest.raises(Unavailable):
            client.cache.get("k")
    assert seen == []


def test_retries_stop_at_the_deadline(redis_factory, start_coord):
    backing = redis_factory()
    server = start_coord(backing.url)
    backing.stop()
    seen: list[RetryEvent] = []
    policy = RetryPolicy(on_retry=seen.append)
    with Client(server.target, timeout=0.5, retry=policy) as client, pytest.raises(Unavailable):
        client.cache.get("k")
    # The server asks for a 1 s pause, which does not fit in a 0.5 s deadline: no retry at all.
    assert seen == []


def test_python_retries_match_the_shipped_service_config():
    configured = {
        f"/{n['service']}/{n['method']}"
        for mc in SERVICE_CONFIG["methodConfig"]
        if "retryPolicy" in mc
        for n in mc["name"]
    }
    assert configured == RETRIED_METHODS
    assert {m for m in RETRIED_METHODS if m.startswith("/coord.cache.v1.")} == {
        "/coord.cache.v1.CacheService/Get",
        "/coord.cache.v1.CacheService/BatchGet",
        "/coord.cache.v1.CacheService/Touch",
    }
    cache_policy = next(mc["retryPolicy"] for mc in SERVICE_CONFIG["methodConfig"] if "retryPolicy" in mc)
    assert RetryPolicy.from_service_config(cache_policy) == RetryPolicy()  # the defaults mirror the file

    # The channel gets the timeouts but not the retry policies, so attempts never multiply.
    options = dict(channel_options())
    loaded = json.loads(options["grpc.service_config"])
    assert all("retryPolicy" not in mc for mc in loaded["methodConfig"])
    assert all("timeout" in mc for mc in loaded["methodConfig"])
    assert options["grpc.enable_retries"] == 1
    assert options["grpc.max_receive_message_length"] >= 4 << 20
