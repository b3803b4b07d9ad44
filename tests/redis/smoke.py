"""One pass through every service of a running Coord: each RPC family once, with the Redis commands
behind it (scripts, stream reads, consumer groups, Pub/Sub wake-ups, the topic registry)."""

from __future__ import annotations

import threading

from grpc_health.v1 import health_pb2, health_pb2_grpc

from coord.collections.v1 import list_pb2 as ls
from coord.collections.v1 import list_pb2_grpc, map_pb2_grpc, set_pb2_grpc, sorted_set_pb2_grpc
from coord.collections.v1 import map_pb2 as mp
from coord.collections.v1 import set_pb2 as st
from coord.collections.v1 import sorted_set_pb2 as zs
from coord_client import Client
from coord_client.events import Event, PublishItem


def every_service(target: str) -> None:
    """Use cache, lock, rate limit, session, events and the collections through ``target``; assert
    each answers right."""
    with Client(target, timeout=10) as client:
        health = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        _cache(client)
        _lock(client)
        _ratelimit(client)
        _session(client)
        _events(client)
        _collections(client)


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


def _collections(client: Client) -> None:
    channel = client.channel
    maps = map_pb2_grpc.MapServiceStub(channel)
    maps.Set(mp.MapServiceSetRequest(name="smoke:m", fields=[mp.MapField(field="a", value=b"1")]))
    assert maps.Increment(mp.MapServiceIncrementRequest(name="smoke:m", field="a", delta=2)).int_value == 3
    assert (
        maps.Increment(mp.MapServiceIncrementRequest(name="smoke:m", field="f", float_delta=0.5)).float_value
        == 0.5
    )
    assert len(maps.GetAll(mp.MapServiceGetAllRequest(name="smoke:m")).fields) == 2
    assert maps.Remove(mp.MapServiceRemoveRequest(name="smoke:m", fields=["a"])).removed == 1
    assert maps.Touch(mp.MapServiceTouchRequest(name="smoke:m")).collection.exists
    assert maps.Delete(mp.MapServiceDeleteRequest(name="smoke:m")).deleted
    # A waiting Pop is woken through the collections' wake channel by a Push.
    lists = list_pb2_grpc.ListServiceStub(channel)
    popped: list[list[bytes]] = []
    wait = ls.ListServicePopRequest(name="smoke:l", wait={"seconds": 20})
    waiter = threading.Thread(target=lambda: popped.append(list(lists.Pop(wait, timeout=30).values)))
    waiter.start()
    threading.Event().wait(0.3)  # most likely queued by now; if not, the Pop finds the value at once
    lists.Push(ls.ListServicePushRequest(name="smoke:l", values=[b"x", b"y", b"z"], max_length=2))
    waiter.join(30)
    assert popped == [[b"y"]]
    assert list(lists.Range(ls.ListServiceRangeRequest(name="smoke:l", start=0, stop=-1)).values) == [b"z"]
    lists.Push(ls.ListServicePushRequest(name="smoke:l", values=[b"z", b"w"]))
    assert lists.Remove(ls.ListServiceRemoveRequest(name="smoke:l", value=b"z")).removed == 2
    assert lists.Trim(ls.ListServiceTrimRequest(name="smoke:l", start=0, stop=0)).collection.length == 1
    sets = set_pb2_grpc.SetServiceStub(channel)
    assert sets.Add(st.SetServiceAddRequest(name="smoke:s", members=["a", "b", "c"])).added == 3
    assert list(sets.Contains(st.SetServiceContainsRequest(name="smoke:s", members=["a", "z"])).contains) == [
        True,
        False,
    ]
    assert len(sets.Members(st.SetServiceMembersRequest(name="smoke:s")).members) == 3
    assert len(sets.Pop(st.SetServicePopRequest(name="smoke:s", count=2)).members) == 2
    board = sorted_set_pb2_grpc.SortedSetServiceStub(channel)
    members = [zs.ScoredMember(member=m, score=s) for m, s in (("a", 1), ("b", 2), ("c", 3))]
    assert board.Put(zs.SortedSetServicePutRequest(name="smoke:z", members=members)).added == 3
    assert (
        board.Increment(zs.SortedSetServiceIncrementRequest(name="smoke:z", member="a", delta=5)).score == 6
    )
    top = board.RangeByRank(
        zs.SortedSetServiceRangeByRankRequest(
            name="smoke:z", ranks=zs.RankWindow(start=0, stop=1), order=zs.ORDER_DESCENDING
        )
    )
    assert [m.member for m in top.members] == ["a", "c"]
    around = board.RangeByRank(
        zs.SortedSetServiceRangeByRankRequest(name="smoke:z", around=zs.Around(member="c", before=1, after=1))
    )
    assert [m.member for m in around.members] == ["b", "c", "a"]
    ranks = board.GetRank(
        zs.SortedSetServiceGetRankRequest(name="smoke:z", members=["b"], order=zs.ORDER_DESCENDING)
    )
    assert (ranks.ranks[0].rank, ranks.ranks[0].score) == (2, 2.0)
    assert [
        s.score
        for s in board.GetScore(zs.SortedSetServiceGetScoreRequest(name="smoke:z", members=["c"])).scores
    ] == [3]
    scored = board.RangeByScore(
        zs.SortedSetServiceRangeByScoreRequest(name="smoke:z", min=zs.ScoreBound(score=2, exclusive=True))
    )
    assert [m.member for m in scored.members] == ["c", "a"]
    assert board.Remove(zs.SortedSetServiceRemoveRequest(name="smoke:z", members=["a"])).removed == 1
