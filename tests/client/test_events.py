from __future__ import annotations

import asyncio
import threading

import grpc

from coord_client import AsyncClient, Client
from coord_client.events import Event, PublishItem

from ..conftest import free_port
from ..events.helpers import publish


def _collect(client: Client, pattern: str, want: int, out: list[Event], subs: list) -> threading.Thread:
    def run() -> None:
        subscription = client.events.subscribe(pattern, start="earliest")
        subs.append(subscription)
        for event in subscription:
            out.append(event)
            if len(out) >= want:
                subscription.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_subscription_resumes_across_a_server_restart_without_gap_or_duplicate(coord, start_coord):
    port = free_port()
    cluster = coord.kind == "cluster"
    server = start_coord(coord.backing.url, redis_cluster=cluster, listen=f"127.0.0.1:{port}")
    published: dict[str, list[str]] = {"num.a": [], "num.b": []}
    with Client(f"127.0.0.1:{port}", timeout=5) as client:
        logs: list[list[Event]] = [[], []]
        subs: list = []
        threads = [_collect(client, "num.*", 400, log, subs) for log in logs]

        def publish_numbered(start: int, count: int) -> None:
            items = [PublishItem(f"num.{'ab'[i % 2]}", b"%d" % i) for i in range(start, start + count)]
            for item, result in zip(items, client.events.publish_many(items), strict=True):
                published[item.topic].append(result.id)

        publish_numbered(0, 200)
        server.stop()  # every stream breaks; the subscribers retry until a server answers again
        server = start_coord(coord.backing.url, redis_cluster=cluster, listen=f"127.0.0.1:{port}")
        grpc.channel_ready_future(client.channel).result(timeout=30)  # past the reconnect backoff
        publish_numbered(200, 200)
        for thread in threads:
            thread.join(60)
            assert not thread.is_alive()
    for log in logs:
        for topic, ids in published.items():
            got = [e.id for e in log if e.topic == topic]
            assert got == ids  # every event once, in order
        numbers = sorted(int(e.data) for e in log)
        assert numbers == list(range(400))


def test_subscription_resumes_after_redis_restarts_with_aof(redis_factory, start_coord):
    backing = redis_factory(extra=("--appendonly", "yes", "--appendfsync", "always"))
    server = start_coord(backing.url)
    with Client(server.target, timeout=5) as client:
        log: list[Event] = []
        subs: list = []
        thread = _collect(client, "aof", 100, log, subs)
        first = [client.events.publish("aof", b"%d" % i).id for i in range(50)]
        backing.stop()
        backing.start()  # same port and data dir: the AOF brings every acknowledged event back
        second = []
        for i in range(50, 100):
            for _ in range(100):
                try:
                    second.append(client.events.publish("aof", b"%d" % i).id)
                    break
                except Exception:  # Redis still loading: the server answers UNAVAILABLE
                    threading.Event().wait(0.05)
        thread.join(60)
        assert not thread.is_alive()
    assert [e.id for e in log] == first + second


def test_async_subscribe_with_pattern_and_cursor(coord):
    async def main() -> None:
        async with AsyncClient(coord.target, timeout=5) as client:
            first = await client.events.publish("shop.orders", b"1")
            await client.events.publish("shop.orders", b"2")
            await client.events.publish("shop.refunds", b"3")
            subscription = client.events.subscribe(
                "shop.*", after={"shop.orders": first.id}, start="earliest"
            )
            got = []
            async for event in subscription:
                got.append((event.topic, event.data))
                if len(got) == 2:
                    break
            subscription.close()
            assert sorted(got) == [("shop.orders", b"2"), ("shop.refunds", b"3")]
            assert subscription.cursors["shop.refunds"]
            assert await client.events.list_topics("shop.*") == ["shop.orders", "shop.refunds"]
            info = await client.events.get_topic("shop.orders")
            assert info.exists and info.length == 2

    asyncio.run(main())


def test_async_consume_acks_on_return_and_nacks_on_exception(coord):
    async def main() -> None:
        async with AsyncClient(coord.target, timeout=5) as client:
            await client.events.publish_many([PublishItem("tasks", b"%d" % i) for i in range(5)])
            attempts: dict[bytes, int] = {}
            done = asyncio.Event()

            async def handler(event: Event) -> None:
                attempts[event.data] = attempts.get(event.data, 0) + 1
                if event.data == b"3" and event.delivery_count == 1:
                    raise RuntimeError("transient failure")
                if len(attempts) == 5 and attempts[b"3"] == 2:
                    done.set()

            worker = asyncio.create_task(
                client.events.consume("tasks", "w", handler, prefetch=2, ack_timeout=30)
            )
            await asyncio.wait_for(done.wait(), 20)
            info = await client.events.get_topic("tasks")
            for _ in range(200):  # the last ack goes out right after the handler returns
                if info.groups[0].pending == 0:
                    break
                await asyncio.sleep(0.05)
                info = await client.events.get_topic("tasks")
            worker.cancel()
            assert info.groups[0].pending == 0
            assert attempts == {b"0": 1, b"1": 1, b"2": 1, b"3": 2, b"4": 1}

    asyncio.run(main())


def test_sync_consume_stops_when_asked(coord):
    with Client(coord.target, timeout=5) as client:
        publish_ids = [client.events.publish("sync.jobs", b"%d" % i).id for i in range(3)]
        seen: list[str] = []
        stop = threading.Event()

        def handler(event: Event) -> None:
            seen.append(event.id)
            if len(seen) == 3:
                stop.set()

        client.events.consume("sync.jobs", "g", handler, stop=stop)
        assert seen == publish_ids


def test_publish_dedup_through_the_client(coord):
    with Client(coord.target) as client:
        a = client.events.publish("d", "x", dedup_id="k")
        b = client.events.publish("d", "y", dedup_id="k")
        assert b.duplicate and a.id == b.id and not a.duplicate
        assert publish  # helpers stay importable alongside the client


def test_volatile_through_the_async_client(coord):
    async def main() -> None:
        async with AsyncClient(coord.target, timeout=5) as client:
            subscription = client.events.subscribe("cursor.moves", volatile=True)
            received: list[Event] = []

            async def read() -> None:
                async for event in subscription:
                    received.append(event)
                    if event.data == b"1":
                        return

            reader = asyncio.create_task(read())
            for _ in range(200):  # probe until the server listens on the channel
                await client.events.publish("cursor.moves", b"probe", volatile=True)
                if received:
                    break
                await asyncio.sleep(0.02)
            for i in range(2):
                await client.events.publish("cursor.moves", b"%d" % i, volatile=True)
            await asyncio.wait_for(reader, 10)
            subscription.close()
            numbers = [e.sequence for e in received]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # no hole
            assert [e.data for e in received[-2:]] == [b"0", b"1"]

    asyncio.run(main())
