"""One pass through every service of a running Coord: each RPC family once, with the Redis commands
behind it (scripts, stream reads, consumer groups, Pub/Sub wake-ups, the topic registry)."""

from __future__ import annotations

import threading

from grpc_health.v1 import health_pb2, health_pb2_grpc

from coord_client import Client
from coord_client.events import Event, PublishItem


def every_service(target: str) -> None:
    """Use cache, lock, rate limit, session and events through ``target``; assert each answers right."""
    with Client(target, timeout=10) as client:
        health = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        _cache(client)
        _lock(client)
        _ratelimit(client)
        _session(client)
        _events(client)


def _cache(client: Client) -> None:
    assert client.cache.set("smoke:a", b"1", ttl=60).stored
    assert client.cache.get("smoke:a").value == b"1"
    assert client.cache.increment("smoke:n", 5, ttl=60).value == 5
    assert client.cache.touch("smoke:a", 120).found
    client.cache.batch_set({"smoke:b": b"2", "smoke:c": b"3"}, ttl=60)
    assert [e.value for e in client.cache.batch_get(["smoke:b", "smoke:c"])] == [b"2", b"3"]
    assert client.cache.delete("smoke:a", "smoke:b").deleted_count == 2


def _lock(client: Client) -> None:
    first = client.lock.acquire("smoke", ttl=30)
    assert first
    assert client.lock.describe("smoke").holders
    assert client.lock.extend("smoke", first.lock_token, ttl=30)
    # A waiter is woken through Pub/Sub (the lock's wake channel) when the holder releases.
    waited: list[bool] = []

    def wait_for_it() -> None:
        waited.append(bool(client.lock.acquire("smoke", ttl=30, wait=20)))

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    for _ in range(400):
        if client.lock.describe("smoke").queue_length:
            break
        threading.Event().wait(0.02)
    assert client.lock.release("smoke", first.lock_token)
    waiter.join(30)
    assert waited == [True]


def _ratelimit(client: Client) -> None:
    assert client.limit("smoke:user", rate="2/m")
    assert client.limit("smoke:user", rate="2/m")
    assert not client.limit("smoke:user", rate="2/m")
    assert client.ratelimit.reset("smoke:user")
    assert client.limit("smoke:user", rate="2/m", algorithm="sliding_window")


def _session(client: Client) -> None:
    created = client.session.create(subject="smoke-user", attributes={"role": b"admin"})
    assert client.session.validate(created.token).session is not None
    assert client.session.update(created.token, set={"theme": b"dark"}).applied
    rotated = client.session.rotate(created.token, grace=0)
    assert rotated.token and client.session.validate(created.token).session is None
    other = client.session.create(subject="smoke-user")
    assert len(client.session.list("smoke-user").sessions) == 2
    assert client.session.revoke(other.token)
    assert client.session.revoke_all("smoke-user") == 1


def _events(client: Client) -> None:
    ids = [r.id for r in client.events.publish_many([PublishItem("smoke.t", b"%d" % i) for i in range(3)])]
    got: list[Event] = []
    with client.events.subscribe("smoke.*", start="earliest") as subscription:
        for event in subscription:
            got.append(event)
            if len(got) == 3:
                break
    assert [e.id for e in got] == ids
    assert client.events.list_topics("smoke.*") == ["smoke.t"]
    # A consumer group: created, read, acknowledged.
    seen: list[str] = []
    stop = threading.Event()

    def handle(event: Event) -> None:
        seen.append(event.id)
        if len(seen) == 3:
            stop.set()

    client.events.consume("smoke.t", "workers", handle, group_start="earliest", stop=stop)
    assert seen == ids
    groups = client.events.get_topic("smoke.t").groups
    assert [g.name for g in groups] == ["workers"]
    # Volatile events travel over Pub/Sub.
    volatile: list[Event] = []
    with client.events.subscribe("smoke.live", volatile=True) as live:

        def read() -> None:
            for event in live:
                volatile.append(event)
                if event.data == b"last":
                    return

        reader = threading.Thread(target=read)
        reader.start()
        for _ in range(400):  # until the server listens on the channel
            client.events.publish("smoke.live", b"probe", volatile=True)
            if volatile:
                break
            threading.Event().wait(0.02)
        client.events.publish("smoke.live", b"last", volatile=True)
        reader.join(20)
    assert volatile and volatile[-1].data == b"last"
