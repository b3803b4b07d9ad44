"""A Coord server process SIGKILLed in the middle of work: nothing it held outlives what Redis bounds.

- mid-Hold: the dead server can neither renew nor release its Hold's grant, so the lease runs to its
  TTL; a waiter it had queued ages out of the queue; a caller on another server is granted the lock
  after the lease ended, with a higher fencing token.
- mid-Consume: the events its consumer had not acknowledged are delivered again to another consumer of
  the group once their ack timeout passes; none is lost, none that was acknowledged comes back.
- mid-batch: a CheckBatch and a BatchSet the server had sent to Redis when it died were applied or
  not, each item whole; the rate limit's bound holds whatever the outcome, also with clients going on
  through another server while one dies under load.

Servers are processes (``ServerProcess``), on the single Redis and on the 3-master Cluster of the
``coord`` fixture. Invariants are checked on what the clients recorded in a ``history.History``,
plus, for rate limits, on what Redis holds (invariants_process.py).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psutil
import pytest
import redis

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.events.v1 import events_pb2_grpc
from coord.lock.v1 import lock_pb2 as lock_pb
from coord.ratelimit.v1 import ratelimit_pb2_grpc

from ..conftest import CoordUnderTest, RedisClusterProcess, wait_for
from ..events.helpers import Consumer, ms, publish_many
from ..lock._util import HoldStream, X, describe, dur, lock_stub
from ..ratelimit.helpers import FIXED_WINDOW, desc, rule
from ..ratelimit.helpers import pb as rl_pb
from ..server.test_process import ServerProcess
from .history import History, check_cache, check_errors, check_events, check_locks, check_rate_limit, position
from .invariants_process import check_consumed, record_batch, record_grant

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``start(coord, **env)``: a Coord process on the ``coord`` fixture's Redis; killed at teardown."""
    started: list[ServerProcess] = []

    def start(coord: CoordUnderTest, **env: str) -> ServerProcess:
        cluster = "1" if coord.kind == "cluster" else "0"
        server = ServerProcess(
            tmp_path, COORD_REDIS_URL=coord.backing.url, COORD_REDIS_CLUSTER=cluster, **env
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()


def _nodes(coord: CoordUnderTest) -> list[redis.Redis]:
    backing = coord.backing
    nodes = backing.nodes if isinstance(backing, RedisClusterProcess) else [backing]
    return [node.client() for node in nodes]


def _unavailable(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value
    return raised.value


# -- mid-Hold ----------------------------------------------------------------------------------------

HOLD_TTL_MS = 3000
NEXT_TTL_MS = 30_000


def test_killed_mid_hold_the_lease_runs_to_its_ttl_and_the_next_grant_is_fenced_above(
    coord: CoordUnderTest, processes: StartServer
) -> None:
    doomed, survivor = processes(coord), processes(coord)
    history = History()
    with lock_stub(doomed.target) as on_doomed, lock_stub(survivor.target) as on_survivor:
        holder = HoldStream(on_doomed)
        sent = history.now()
        holder.acquire("held", mode=X, ttl=dur(HOLD_TTL_MS / 1000))
        first = holder.next().acquired
        record_grant(history, "held", "the killed server's Hold", first, requested_at=sent)
        # A waiter of the server that dies, ahead in the queue of the one that lives.
        queued = HoldStream(on_doomed)
        queued.acquire("held", mode=X, ttl=dur(HOLD_TTL_MS / 1000), wait=dur(60))
        assert queued.next().WhichOneof("kind") == "queued"
        request = lock_pb.AcquireRequest(name="held", mode=X, ttl=dur(NEXT_TTL_MS / 1000), wait=dur(60))
        sent = history.now()
        waiting = on_survivor.Acquire.future(request, timeout=90)
        wait_for(lambda: describe(on_survivor, "held").queue_length == 2, "both waiters queued")

        doomed.kill()
        for stream in (holder, queued):  # each learns its stream broke: the holder stops its work
            with pytest.raises(grpc.RpcError) as broken:
                stream.next()
            history.failed("lock.hold", broken.value)
        # Nobody released the grant: Redis ends it at its TTL, and the dead server's waiter leaves
        # the queue once its heartbeat deadline passes (COORD_LOCK_WAITER_TTL).
        reply = waiting.result()
        assert reply.acquired, reply
        second = reply.grant
        record_grant(history, "held", "the survivor's waiter", second, requested_at=sent)
        after = describe(on_survivor, "held")
        assert (after.holder_count, after.queue_length) == (1, 0)
        assert after.holders[0].fencing_token == second.fencing_token
        on_survivor.Release(lock_pb.ReleaseRequest(name="held", lock_token=second.lock_token), timeout=10)
    check_locks(history)
    check_errors(history, allowed={"UNAVAILABLE"})
    # On the Redis clock: the second lease began when the first one's TTL had run out, not before.
    first_end = first.expire_time.ToMilliseconds()
    assert second.expire_time.ToMilliseconds() - NEXT_TTL_MS >= first_end
    assert second.fencing_token > first.fencing_token


# -- mid-Consume -------------------------------------------------------------------------------------

TOPIC, GROUP = "jobs", "workers"
ACK_TIMEOUT_MS = 1000


def _pending(coord: CoordUnderTest) -> int:
    with coord.redis() as r:
        return int(r.xpending(f"coord:default:events:{{{TOPIC}}}", GROUP)["pending"])


def test_killed_mid_consume_unacked_events_go_to_another_consumer_and_none_is_lost(
    coord: CoordUnderTest, processes: StartServer
) -> None:
    doomed, survivor = processes(coord), processes(coord)
    history = History()
    history.subscriber_started("the group", TOPIC, "0-0")  # owed every event, by one consumer or another
    with (
        grpc.insecure_channel(doomed.target) as ch_doomed,
        grpc.insecure_channel(survivor.target) as ch_survivor,
    ):
        on_doomed = events_pb2_grpc.EventsServiceStub(ch_doomed)
        on_survivor = events_pb2_grpc.EventsServiceStub(ch_survivor)
        published = publish_many(on_survivor, TOPIC, [b"%d" % n for n in range(20)])
        for event_id in published:
            history.event_published(TOPIC, event_id)
        first = Consumer(on_doomed, TOPIC, GROUP, ack_timeout=ms(ACK_TIMEOUT_MS), initial_credits=10)
        got = first.events(10)
        acked_by_first = [e.id for e in got[:4]]
        first.ack(*acked_by_first)
        wait_for(lambda: _pending(coord) == 6, "the first consumer's acks to reach Redis")
        unacked = [e.id for e in got[4:]]

        doomed.kill()
        history.failed("events.consume", first.stream.wait_error(30))
        second = Consumer(on_survivor, TOPIC, GROUP, ack_timeout=ms(ACK_TIMEOUT_MS), initial_credits=100)
        # The 10 never delivered come at once; the 6 the dead consumer held, after their ack timeout.
        # Each is acknowledged as it comes (one that waits past the ack timeout may come again: at
        # least once).
        expected = set(published) - set(acked_by_first)
        delivered: dict[str, int] = {}  # id -> the highest delivery count seen
        while not expected <= delivered.keys():
            frame = second.stream.next(30)
            if frame.WhichOneof("frame") == "events":
                batch = frame.events.events
                second.ack(*[e.id for e in batch])
                for event in batch:
                    delivered[event.id] = max(delivered.get(event.id, 0), event.delivery_count)
        wait_for(lambda: _pending(coord) == 0, "every event acknowledged")
        second.close()

    assert not set(acked_by_first) & delivered.keys(), "an acknowledged event came back"
    assert all(delivered[i] >= 2 for i in unacked), "a held event was not redelivered"
    for event_id in sorted([*acked_by_first, *delivered], key=position):
        history.event_delivered("the group", event_id)
    check_events(history)
    check_errors(history, allowed={"UNAVAILABLE"})


# -- mid-batch ---------------------------------------------------------------------------------------

# One fixed window of 366 days (epoch-aligned): a test never sees its window turn.
PERIOD = 366 * 86400
LIMIT = 50
QUOTA = rule(LIMIT, PERIOD, FIXED_WINDOW)


def _checks(count: int, key: str = "quota", quota: rl_pb.Rule = QUOTA) -> rl_pb.CheckBatchRequest:
    return rl_pb.CheckBatchRequest(checks=[rl_pb.CheckRequest(descriptors=[desc(key, quota)])] * count)


def _consumed(
    stub: ratelimit_pb2_grpc.RateLimitServiceStub, key: str = "quota", quota: rl_pb.Rule = QUOTA
) -> int:
    """What Redis holds as taken: the limit minus a dry run's remaining."""
    probe = stub.Check(rl_pb.CheckRequest(descriptors=[desc(key, quota)], dry_run=True), timeout=10)
    assert not probe.backend_unavailable
    return quota.limit - probe.remaining


def _ports(server: ServerProcess) -> set[int]:
    """The local ports of ``server``'s TCP connections (to Redis among them)."""
    assert server.proc is not None
    return {c.laddr.port for c in psutil.Process(server.proc.pid).net_connections(kind="tcp")}


def _clients(nodes: list[redis.Redis], ports: set[int], *, blocked: bool = False) -> int:
    """Redis's clients connected from ``ports``; with ``blocked``, only those whose command it holds."""
    return sum(
        1
        for node in nodes
        for client in node.client_list()
        if int(client["addr"].rsplit(":", 1)[1]) in ports and (not blocked or "b" in client["flags"])
    )


@pytest.mark.parametrize("outcome", ["not-applied", "applied-answer-lost"])
def test_killed_mid_batch_each_item_is_applied_or_not_and_the_limit_holds(
    coord: CoordUnderTest, processes: StartServer, outcome: str
) -> None:
    """The batches wait in Redis (CLIENT PAUSE WRITE) when their server is killed. Either Redis drops
    them with the dead connection (not applied), or it ran them while the server was frozen (SIGSTOP)
    and the answers died with it (applied, answer lost); the caller cannot tell which."""
    # Long Redis and rate-limit timeouts: the batches wait in Redis for as long as the test needs,
    # instead of being answered by the failure mode.
    doomed = processes(coord, COORD_REDIS_TIMEOUT="60s", COORD_RATELIMIT_TIMEOUT="60s")
    survivor = processes(coord)
    history = History()
    keys = [f"batch:{n}" for n in range(20)]
    nodes = _nodes(coord)
    with (
        grpc.insecure_channel(doomed.target) as ch_doomed,
        grpc.insecure_channel(survivor.target) as ch_survivor,
    ):
        limiter = ratelimit_pb2_grpc.RateLimitServiceStub(ch_doomed)
        survivor_limiter = ratelimit_pb2_grpc.RateLimitServiceStub(ch_survivor)
        cache = cache_pb2_grpc.CacheServiceStub(ch_doomed)
        admitted = record_batch(history, limiter.CheckBatch(_checks(30), timeout=30), QUOTA)
        sent = history.now()
        old = cache_pb2.BatchSetRequest(requests=[cache_pb2.SetRequest(key=k, value=b"old") for k in keys])
        stored = cache.BatchSet(old, timeout=30).responses
        assert all(r.outcome == cache_pb2.WRITE_OUTCOME_STORED for r in stored)
        for key in keys:
            history.cache_write(key, b"old", started=sent, acked=True)
        new = cache_pb2.BatchSetRequest(requests=[cache_pb2.SetRequest(key=k, value=b"new") for k in keys])
        for node in nodes:  # every script waits in Redis: write commands are held, reads are not
            node.client_pause(60_000, all=False)
        try:
            sent = history.now()
            # The CheckBatch goes out as one write: once Redis holds its first script, it has them all.
            checking = limiter.CheckBatch.future(_checks(40), timeout=60)
            wait_for(
                lambda: _clients(nodes, _ports(doomed), blocked=True) >= 1, "the CheckBatch to wait in Redis"
            )
            # The BatchSet waits in Redis too, or behind the CheckBatch in the server (a Cluster's
            # pipelines go one at a time).
            setting = cache.BatchSet.future(new, timeout=60)
            assert not checking.done() and not setting.done()
            ports = _ports(doomed)
            if outcome == "applied-answer-lost":
                doomed.signal(signal.SIGSTOP)  # frozen: Redis's answers reach nobody
                for node in nodes:
                    node.client_unpause()
                wait_for(lambda: _consumed(survivor_limiter) == LIMIT, "Redis to run the CheckBatch")
                doomed.kill()
            else:
                doomed.kill()
                # Still paused: Redis drops what the dead connection left unrun.
                wait_for(lambda: _clients(nodes, ports) == 0, "Redis to drop the dead server's connections")
        finally:
            for node in nodes:
                node.client_unpause()
        for name, call in (("ratelimit.check_batch", checking), ("cache.batch_set", setting)):
            with pytest.raises(grpc.RpcError) as lost:
                call.result()
            history.failed(name, lost.value)
        for key in keys:  # the outcome of the killed server's writes is unknown
            history.cache_write(key, b"new", started=sent, acked=False)

        # Through the server that lives: the state is whole, and the bound holds from here on.
        limiter = ratelimit_pb2_grpc.RateLimitServiceStub(ch_survivor)
        cache = cache_pb2_grpc.CacheServiceStub(ch_survivor)
        consumed_by_killed = _consumed(limiter) - admitted
        assert check_consumed(limit=LIMIT, admitted=admitted, consumed=_consumed(limiter)) == []
        admitted += record_batch(history, limiter.CheckBatch(_checks(40), timeout=30), QUOTA)
        assert check_consumed(limit=LIMIT, admitted=admitted, consumed=_consumed(limiter)) == []
        sent = history.now()
        entries = cache.BatchGet(cache_pb2.BatchGetRequest(keys=keys), timeout=30).entries
        for entry in entries:
            history.cache_read(entry.key, entry.value if entry.found else None, started=sent)
    for node in nodes:
        node.close()
    check_rate_limit(history)
    check_cache(history)
    check_errors(history, allowed={"UNAVAILABLE"})
    values = sorted({e.value for e in entries})
    if outcome == "not-applied":
        assert (consumed_by_killed, values) == (0, [b"old"])
    else:
        assert consumed_by_killed == LIMIT - 30  # 20 of the 40 admitted, and nobody told
    print(f"\n{outcome}: the killed server's checks consumed {consumed_by_killed}, values read {values}")


WORKERS_PER_SERVER = 2
LOAD_LIMIT = 2000
LOAD = rule(LOAD_LIMIT, PERIOD, FIXED_WINDOW)


def _work(target: str, history: History, stop: threading.Event, exhausted: list[str]) -> None:
    """CheckBatches of 20 until ``stop``, its server dies, or a whole batch is denied by the limit."""
    with grpc.insecure_channel(target) as channel:
        stub = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        while not stop.is_set():
            try:
                reply = stub.CheckBatch(_checks(20, "load", LOAD), timeout=30)
            except grpc.RpcError as error:
                history.failed("ratelimit.check_batch", error)
                return  # this worker's server is gone
            admitted = record_batch(history, reply, LOAD)
            if admitted == 0 and not any(r.check.backend_unavailable for r in reply.results):
                exhausted.append(target)
                return


def test_killed_under_load_the_rate_limit_bound_holds(coord: CoordUnderTest, processes: StartServer) -> None:
    timeouts = {"COORD_REDIS_TIMEOUT": "10s", "COORD_RATELIMIT_TIMEOUT": "10s"}
    doomed, survivor = processes(coord, **timeouts), processes(coord, **timeouts)
    history, stop, exhausted = History(), threading.Event(), []
    workers = [
        threading.Thread(target=_work, args=(server.target, history, stop, exhausted), daemon=True)
        for server in (doomed, survivor)
        for _ in range(WORKERS_PER_SERVER)
    ]
    for worker in workers:
        worker.start()

    def admitted() -> int:
        return sum(1 for d in list(history.decisions) if d.allowed)

    try:
        wait_for(lambda: admitted() >= LOAD_LIMIT // 4, "checks admitted before the kill", timeout=60)
        doomed.kill()
        wait_for(
            lambda: len(exhausted) == WORKERS_PER_SERVER, "the survivor's workers to run out", timeout=60
        )
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    with grpc.insecure_channel(survivor.target) as channel:
        consumed = _consumed(ratelimit_pb2_grpc.RateLimitServiceStub(channel), "load", LOAD)
    check_rate_limit(history)
    check_errors(history, allowed={"UNAVAILABLE"})
    assert check_consumed(limit=LOAD_LIMIT, admitted=admitted(), consumed=consumed) == []
    assert consumed == LOAD_LIMIT  # the survivor's workers ran the limit out
    assert history.failure_codes().get("UNAVAILABLE", 0) >= 1  # the killed server's workers saw it die
    print(
        f"\nadmitted {admitted()} of {LOAD_LIMIT}; {consumed - admitted()} consumed by answers lost "
        "with the killed server"
    )
