"""Redis killed (SIGKILL) and started again, loading, or replaced by its replica, under a workload of
every service; each scenario on a single Redis and on a 3-master Cluster (one master is the victim).

- killed and restarted **with persistence** (AOF, fsync always): calls fail UNAVAILABLE meanwhile;
  after, every acknowledged cache write is readable, lock grants never overlap and their fencing
  tokens increase, the rate limit has not admitted more than its bound across the restart, and every
  acknowledged event is delivered.
- restarted **without persistence**: Redis forgot everything. A subscriber resuming from its cursor
  gets a Gap; a new grant of a lock still held before gets a higher fencing token (the Redis-time
  floor, docs/lock.md); the rate limit held its bound in each life of the data, and starts again.
- **loading** a large dataset (``key-load-delay``): calls get UNAVAILABLE with a RetryInfo, never
  INTERNAL; a rate limit Check applies its rules' failure modes; once loaded, the data is there.
- **failed over** (a Cluster with a replica per master): a master SIGKILLed and its replica promoted
  (calls fail UNAVAILABLE, then succeed against the new master without a restart of Coord; what the
  old master acknowledged last may be lost, and events say so with a Gap), or a manual ``CLUSTER
  FAILOVER`` (nothing lost).

Invariants are checked on the recorded history (history.py), not only on status codes.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.crc import key_slot

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.events.v1 import events_pb2, events_pb2_grpc
from coord.lock.v1 import lock_pb2, lock_pb2_grpc
from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc
from coord_server.keys import hash_tag

from ..conftest import REDIS_CLI, CoordThread, RedisClusterProcess, RedisProcess, wait_for
from ..events.helpers import EARLIEST, subscribe
from ..ratelimit.helpers import FIXED_WINDOW, dur, rule
from .history import (
    History,
    check_cache,
    check_errors,
    check_events,
    check_locks,
    check_rate_limit,
    position,
)
from .invariants_process import check_consumed, check_fencing, record_check, record_grant

AOF = ("--appendonly", "yes", "--appendfsync", "always")
PERIOD = 366 * 86400  # one epoch-aligned fixed window: a test never sees it turn
RETRY_PAUSE = 0.02  # between a worker's calls after a failure (Redis is a process coming back)


# -- private Redis deployments a test may kill ------------------------------------------------------


@dataclass
class Deployment:
    """A private single Redis or 3-master Cluster (optionally with a replica per master)."""

    kind: str
    nodes: list[RedisProcess]
    replicas: list[RedisProcess] = field(default_factory=list)

    @property
    def cluster(self) -> bool:
        return self.kind == "cluster"

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def owner(self, name: str) -> RedisProcess:
        """The master holding the keys of hash tag ``{name}``."""
        if not self.cluster:
            return self.nodes[0]
        slot = key_slot(hash_tag(name).encode())
        for node in self.nodes:
            if node.proc is None:
                continue
            with node.client() as r:
                for first, last, master, *_ in r.execute_command("CLUSTER", "SLOTS"):
                    if first <= slot <= last:
                        port = int(master[1])
                        return next(n for n in [*self.nodes, *self.replicas] if n.port == port)
        raise AssertionError(f"no node serves slot {slot}")

    def names_on(self, node: RedisProcess, prefix: str) -> str:
        """A name starting with ``prefix`` whose keys live on ``node``."""
        for n in range(10_000):
            name = f"{prefix}{n}"
            if self.owner(name) is node:
                return name
        raise AssertionError("no such name")

    def stop(self) -> None:
        for node in [*self.replicas, *self.nodes]:
            node.stop()


def _cluster_create(nodes: list[RedisProcess], replicas: int) -> None:
    addrs = [f"127.0.0.1:{n.port}" for n in nodes]
    subprocess.run(
        [REDIS_CLI, "--cluster", "create", *addrs, "--cluster-replicas", str(replicas), "--cluster-yes"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
    )  # fmt: skip

    def ok() -> bool:
        for node in nodes:
            with node.client() as r:
                info = r.execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info or f"cluster_known_nodes:{len(nodes)}" not in info:
                    return False
        return True

    wait_for(ok, "cluster_state:ok", timeout=60)


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """``deploy(kind, extra=(), replicas=False)``: a private deployment, stopped at teardown."""
    made: list[Deployment] = []

    def make(kind: str, extra: tuple[str, ...] = (), replicas: bool = False) -> Deployment:
        if kind == "single":
            deployment = Deployment(kind, [RedisProcess(tmp_path, extra=extra)])
            made.append(deployment)
            deployment.nodes[0].start()
            return deployment
        cluster = RedisClusterProcess(tmp_path)
        nodes = cluster.nodes
        if replicas:
            nodes = [*nodes, *RedisClusterProcess(tmp_path).nodes]
            # A replica may take over however long ago it last heard from its master.
            extra = (*extra, "--cluster-replica-validity-factor", "0")
        for node in nodes:
            node.extra = (*node.extra, *extra)
        deployment = Deployment(kind, nodes)
        made.append(deployment)
        for node in nodes:
            node.start()
        _cluster_create(nodes, 1 if replicas else 0)
        if replicas:  # which ones redis-cli made replicas
            roles = {}
            for node in nodes:
                with node.client() as r:
                    roles[node.port] = r.info("replication")["role"]
            deployment.nodes = [n for n in nodes if roles[n.port] == "master"]
            deployment.replicas = [n for n in nodes if roles[n.port] == "slave"]
            for replica in deployment.replicas:
                with replica.client() as r:
                    synced = lambda r=r: r.info("replication")["master_link_status"] == "up"  # noqa: E731
                    wait_for(synced, "a replica's sync", timeout=60)
        return deployment

    yield make
    for deployment in made:
        deployment.stop()


def _kill(node: RedisProcess) -> None:
    """SIGKILL: no shutdown save, only what the AOF fsynced survives."""
    assert node.proc is not None
    node.proc.kill()
    node.proc.wait(10)
    node.proc = None


# -- a workload of every service, recorded ----------------------------------------------------------


@dataclass
class Names:
    """The workload's names; on a Cluster each may be placed on a chosen node."""

    lock: str = "wl.lock"
    limit: str = "wl.limit"
    topic: str = "wl.topic"
    cache: str = "wl.key"


LIMIT = 40
QUOTA = rule(LIMIT, PERIOD, FIXED_WINDOW)


class Workload:
    """One worker thread running, in turn: a cache Set of a new key, a lock Acquire and Release, a
    rate limit Check and a Publish, recording every outcome in ``history``. ``rounds`` counts the
    rounds in which every call succeeded."""

    def __init__(self, target: str, names: Names) -> None:
        self.target = target
        self.names = names
        self.history = History()
        self.history.subscriber_started("reader", names.topic, "0-0")
        self.rounds = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="workload", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Workload:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert self.error is None, self.error

    def wait_rounds(self, count: int, what: str, timeout: float = 60) -> None:
        target = self.rounds + count
        wait_for(lambda: self.rounds >= target or self.error is not None, what, timeout=timeout)
        assert self.error is None, self.error

    def _call(self, op: str, rpc: Callable[..., Any], request: Any) -> Any:
        try:
            reply = rpc(request, timeout=10)
        except grpc.RpcError as error:
            self.history.failed(op, error)
            return None
        self.history.ok(op)
        return reply

    def _run(self) -> None:
        try:
            with grpc.insecure_channel(self.target) as channel:
                self._loop(channel)
        except BaseException as exc:
            self.error = exc

    def _loop(self, channel: grpc.Channel) -> None:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        locks = lock_pb2_grpc.LockServiceStub(channel)
        limits = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        events = events_pb2_grpc.EventsServiceStub(channel)
        names, history = self.names, self.history
        n = 0
        while not self.stop.is_set():
            n += 1
            ok = True
            # cache: a new key each round, so each write's fate is its own
            key, value = f"{names.cache}.{n}", b"v%d" % n
            started = history.now()
            stored = self._call(
                "cache.set", cache.Set, cache_pb2.SetRequest(key=key, value=value, ttl=dur(600))
            )
            history.cache_write(key, value, started=started, acked=stored is not None)
            ok &= stored is not None
            # lock: acquire, then release (the holder stops relying on it before sending the Release)
            sent = history.now()
            request = lock_pb2.AcquireRequest(name=names.lock, mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=dur(5))
            reply = self._call("lock.acquire", locks.Acquire, request)
            ok &= reply is not None
            if reply is not None and reply.acquired:
                grant = record_grant(history, names.lock, "worker", reply.grant, requested_at=sent)
                history.lock_released(grant)
                release = lock_pb2.ReleaseRequest(name=names.lock, lock_token=reply.grant.lock_token)
                ok &= self._call("lock.release", locks.Release, release) is not None
            # rate limit
            check = ratelimit_pb2.CheckRequest(
                descriptors=[ratelimit_pb2.Descriptor(key=names.limit, rule=QUOTA)]
            )
            decided = self._call("ratelimit.check", limits.Check, check)
            if decided is not None:
                record_check(history, decided, [QUOTA])
                ok &= not decided.backend_unavailable
            # events
            data = b"e%d" % n
            published = self._call(
                "events.publish", events.Publish, events_pb2.PublishRequest(topic=names.topic, data=data)
            )
            if published is None:
                history.publish_unknown(names.topic, data)
            else:
                history.event_published(names.topic, published.id, data)
            ok &= published is not None
            if ok:
                self.rounds += 1
            else:
                time.sleep(RETRY_PAUSE)


def _read_topic(target: str, history: History, subscriber: str, topic: str, after: str = "0-0") -> None:
    """Subscribe after ``after`` and record every event and gap up to the last acknowledged event.
    On UNAVAILABLE (a pooled connection to a restarted Redis fails once), resubscribe from the last
    event received, as a client must."""
    acked = [p.id for p in history.published if p.topic == topic]
    last = max(acked, key=position) if acked else None
    cursor = after
    end = time.monotonic() + 30
    with grpc.insecure_channel(target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        reached = last is None
        while not reached:
            cursors = [events_pb2.TopicCursor(topic=topic, after_id=cursor)] if cursor != "0-0" else []
            stream = subscribe(stub, topic, start=EARLIEST, cursors=cursors)
            try:
                while not reached:
                    frame = stream.next(30)
                    kind = frame.WhichOneof("frame")
                    if kind == "gap":
                        gap = frame.gap
                        history.gap_reported(subscriber, gap.after_id, gap.first_available_id)
                        reached = not gap.first_available_id and position(gap.after_id) >= position(last)
                    elif kind == "events":
                        for event in frame.events.events:
                            history.event_delivered(subscriber, event.id, event.data)
                            cursor = event.id
                        reached = position(cursor) >= position(last)
            except AssertionError:  # the stream ended: it must be with UNAVAILABLE
                error = stream.wait_error()
                history.failed("events.subscribe", error)
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                assert time.monotonic() < end, "the topic could not be read"
                time.sleep(RETRY_PAUSE)
            finally:
                stream.cancel()


def _read_back(target: str, history: History) -> None:
    """A Get of every key a write was attempted on, recorded."""
    keys = sorted({w.key for w in history.writes})
    with grpc.insecure_channel(target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        started = history.now()
        entries = stub.BatchGet(cache_pb2.BatchGetRequest(keys=keys), timeout=30).entries
    for entry in entries:
        history.cache_read(entry.key, entry.value if entry.found else None, started=started)


def _consumed(target: str, key: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        request = ratelimit_pb2.CheckRequest(
            descriptors=[ratelimit_pb2.Descriptor(key=key, rule=QUOTA)], dry_run=True
        )
        reply = stub.Check(request, timeout=10)
    assert not reply.backend_unavailable
    return LIMIT - reply.remaining


def _admitted(history: History) -> int:
    return sum(1 for d in history.decisions if d.allowed)


def _check_all(target: str, workload: Workload, *, failures: set[str]) -> None:
    history = workload.history
    _read_topic(target, history, "reader", workload.names.topic)
    _read_back(target, history)
    check_errors(history, allowed=failures)
    check_locks(history)
    check_rate_limit(history)
    assert (
        check_consumed(
            limit=LIMIT, admitted=_admitted(history), consumed=_consumed(target, workload.names.limit)
        )
        == []
    )
    check_events(history)
    check_cache(history)


def _names(deployment: Deployment, victim: RedisProcess) -> Names:
    """On a Cluster, the lock, the limit and the topic on the victim; the cache keys spread out."""
    if not deployment.cluster:
        return Names()
    return Names(
        lock=deployment.names_on(victim, "wl.lock"),
        limit=deployment.names_on(victim, "wl.limit"),
        topic=deployment.names_on(victim, "wl.topic"),
    )


# -- killed and restarted with persistence ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_killed_and_restarted_with_aof_keeps_what_was_acknowledged(
    kind: str, deploy: Callable[..., Deployment], start_coord: Callable[..., CoordThread]
) -> None:
    deployment = deploy(kind, AOF)
    victim = deployment.nodes[0]
    names = _names(deployment, victim)
    server = start_coord(deployment.url, cluster=deployment.cluster)
    with Workload(server.target, names) as workload:
        workload.wait_rounds(15, "rounds before the kill")
        _kill(victim)
        failed_before = len(workload.history.failures)
        wait_for(lambda: len(workload.history.failures) > failed_before, "a call to fail while Redis is down")
        victim.start()  # same port and directory: the AOF is replayed
        workload.wait_rounds(15, "rounds after the restart")
        # Until the limit ran out: it admits LIMIT in all, across the restart.
        wait_for(lambda: any(not d.allowed and d.decide_ms for d in workload.history.decisions), "denials")
    _check_all(server.target, workload, failures={"UNAVAILABLE"})
    # The limit ran out exactly once across the restart (an answer lost with the kill may have
    # consumed without admitting: _check_all holds admitted <= consumed <= LIMIT).
    assert _consumed(server.target, names.limit) == LIMIT
    print(f"\n{kind}: failures while Redis restarted: {workload.history.failure_codes()}")


# -- restarted without persistence ------------------------------------------------------------------


def _details(error: grpc.RpcError) -> tuple[str, dict[str, str], error_details_pb2.RetryInfo | None]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    info, retry = error_details_pb2.ErrorInfo(), None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
    return info.reason, dict(info.metadata), retry


def _until_served(call: Callable[[], Any], history: History, op: str) -> Any:
    """``call()`` retried on UNAVAILABLE (recorded) until it succeeds: Redis is coming back."""
    end = time.monotonic() + 30
    while True:
        try:
            return call()
        except grpc.RpcError as error:
            history.failed(op, error)
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            assert time.monotonic() < end, "Redis never came back"
            time.sleep(RETRY_PAUSE)


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_restarted_without_persistence_reports_the_loss_and_keeps_fencing(
    kind: str, deploy: Callable[..., Deployment], start_coord: Callable[..., CoordThread]
) -> None:
    deployment = deploy(kind)  # --save "" --appendonly no: a restart comes back empty
    victim = deployment.nodes[0]
    names = _names(deployment, victim)
    server = start_coord(deployment.url, cluster=deployment.cluster)
    before, after = History(), History()  # the two lives of the data
    with grpc.insecure_channel(server.target) as channel:
        locks = lock_pb2_grpc.LockServiceStub(channel)
        limits = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        events = events_pb2_grpc.EventsServiceStub(channel)
        check = ratelimit_pb2.CheckRequest(
            descriptors=[ratelimit_pb2.Descriptor(key=names.limit, rule=QUOTA)]
        )
        ids = []
        for n in range(3):
            ids.append(
                events.Publish(events_pb2.PublishRequest(topic=names.topic, data=b"%d" % n), timeout=10).id
            )
            before.event_published(names.topic, ids[-1], b"%d" % n)
        acquire = lock_pb2.AcquireRequest(name=names.lock, mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=dur(600))
        held = locks.Acquire(acquire, timeout=10)  # held across the restart: Redis will forget it
        assert held.acquired
        for _ in range(LIMIT + 5):
            record_check(before, limits.Check(check, timeout=10), [QUOTA])

        _kill(victim)
        down = limits.Check(check, timeout=10)  # the rule's failure mode decides: closed
        assert (down.allowed, down.backend_unavailable) == (False, True)
        record_check(after, down, [QUOTA])
        victim.start()

        # Events: a subscriber resuming from the first event's cursor is told of the loss.
        new = _until_served(
            lambda: events.Publish(events_pb2.PublishRequest(topic=names.topic, data=b"new"), timeout=10),
            after,
            "events.publish",
        ).id
        before.event_published(names.topic, new, b"new")
        before.subscriber_started("resumed", names.topic, ids[0])
        _read_topic(server.target, before, "resumed", names.topic, after=ids[0])
        check_events(before)
        gaps = before.subscribers["resumed"].gaps
        assert gaps and gaps[0][0] == ids[0], gaps

        # Locks: the grant held before is gone with the data; the next grant overlaps it, which only
        # its higher fencing token lets the protected resource detect.
        again = _until_served(lambda: locks.Acquire(acquire, timeout=10), after, "lock.acquire")
        assert again.acquired, "Redis forgot the grant: the lock is free"
        assert check_fencing([held.grant.fencing_token, again.grant.fencing_token]) == []

        # Rate limit: each life of the data held the bound; the second starts from nothing.
        for _ in range(2 * LIMIT):  # until Redis decides a denial: the new life's limit ran out
            reply = _until_served(lambda: limits.Check(check, timeout=10), after, "ratelimit.check")
            record_check(after, reply, [QUOTA])
            if not reply.allowed and not reply.backend_unavailable:
                break
    check_rate_limit(before)
    check_rate_limit(after)
    # Forgotten: the limit admitted again after the loss, up to its bound, and ran out again.
    assert _admitted(before) == LIMIT and 0 < _admitted(after) <= LIMIT
    assert _consumed(server.target, names.limit) == LIMIT
    check_errors(after, allowed={"UNAVAILABLE"})


# -- loading -----------------------------------------------------------------------------------------

FILLER_KEYS = 3000
LOAD_DELAY_US = 2000  # per key: about 6 s of LOADING


def _ping(port: int) -> bytes:
    """The first line Redis answers a PING with, on a fresh connection: ``+PONG``, ``-LOADING ...``,
    or b"" when nothing answers. A raw socket: redis-py would retry a LOADING reply with backoff."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(256).split(b"\r\n")[0]
    except OSError:
        return b""


def _loading(node: RedisProcess) -> bool:
    return _ping(node.port).startswith(b"-LOADING")


def _restart_loading(node: RedisProcess, tag: str) -> None:
    """SAVE, SIGKILL, and start again reading the RDB slowly: ``LOADING`` for several seconds.
    ``tag`` is a hash tag the node serves (the filler keys must be its own on a Cluster)."""
    with node.client() as r:
        pipe = r.pipeline(transaction=False)
        for n in range(FILLER_KEYS):
            pipe.set(f"filler:{{{tag}}}:{n}", b"x" * 64)
        pipe.execute()
        r.save()
    _kill(node)
    extra = node.extra
    node.extra = (
        *extra,
        "--key-load-delay",
        str(LOAD_DELAY_US),
        "--loading-process-events-interval-bytes",
        "1024",
    )
    node.ping = lambda: _ping(node.port) != b""  # type: ignore[method-assign]
    try:
        node.start()
    finally:
        node.extra = extra
        del node.ping


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_loading_a_large_dataset_is_unavailable_with_retry_info_and_failure_modes_apply(
    kind: str, deploy: Callable[..., Deployment], start_coord: Callable[..., CoordThread]
) -> None:
    deployment = deploy(kind)
    victim = deployment.nodes[0]
    names = _names(deployment, victim)
    key = names.cache if not deployment.cluster else deployment.names_on(victim, "wl.key")
    server = start_coord(deployment.url, cluster=deployment.cluster, ratelimit_timeout=1.0)
    closed = rule(LIMIT, PERIOD, FIXED_WINDOW)
    opened = rule(LIMIT, PERIOD, FIXED_WINDOW, on_backend_error=ratelimit_pb2.FAILURE_MODE_OPEN)
    history = History()
    with grpc.insecure_channel(server.target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        limits = ratelimit_pb2_grpc.RateLimitServiceStub(channel)

        def checks(rule_: ratelimit_pb2.Rule) -> ratelimit_pb2.CheckResponse:
            request = ratelimit_pb2.CheckRequest(
                descriptors=[ratelimit_pb2.Descriptor(key=names.limit, rule=rule_)]
            )
            return limits.Check(request, timeout=10)

        started = history.now()
        cache.Set(cache_pb2.SetRequest(key=key, value=b"kept", ttl=dur(600)), timeout=10)
        history.cache_write(key, b"kept", started=started, acked=True)
        assert checks(closed).allowed

        _restart_loading(victim, deployment.names_on(victim, "filler"))
        assert _loading(victim), "Redis finished loading before the test could look"
        refusals: list[tuple[str, dict[str, str], bool]] = []
        decisions: list[tuple[bool, bool]] = []
        served = 0  # checks Redis decided (it finished loading meanwhile)
        while _loading(victim):
            try:
                cache.Get(cache_pb2.GetRequest(key=key), timeout=10)
            except grpc.RpcError as error:
                history.failed("cache.get", error)
                reason, metadata, retry = _details(error)
                refusals.append(
                    (reason, metadata, retry is not None and retry.retry_delay.ToNanoseconds() > 0)
                )
            for rule_ in (closed, opened):
                reply = checks(rule_)
                if reply.backend_unavailable:
                    decisions.append((rule_ is closed, reply.allowed))
                else:
                    served += reply.allowed
            time.sleep(0.05)
        wait_for(lambda: _answers(cache, key), "Coord to read again after the load")
        started = history.now()
        entry = cache.Get(cache_pb2.GetRequest(key=key), timeout=10).entry
        history.cache_read(key, entry.value if entry.found else None, started=started)
        consumed_after = LIMIT - checks(rule(LIMIT, PERIOD, FIXED_WINDOW)).remaining

    assert refusals, "no call was refused while Redis loaded"
    check_errors(history, allowed={"UNAVAILABLE"})
    assert all(reason == "BACKEND_UNAVAILABLE" and has_retry for reason, _, has_retry in refusals), refusals
    states = {metadata.get("state", "") for _, metadata, _ in refusals}
    # A loading Cluster node answers CLUSTERDOWN before LOADING (its view of the cluster is not up
    # yet), and its peers may mark it failed: either state, named, at once.
    assert states & ({"LOADING", "CLUSTERDOWN"} if deployment.cluster else {"LOADING"}), states
    # Fail closed denies, fail open admits, each saying the backend was unavailable.
    assert decisions, "no Check was answered by its failure mode"
    assert {allowed for is_closed, allowed in decisions if is_closed} <= {False}
    assert {allowed for is_closed, allowed in decisions if not is_closed} <= {True}
    check_cache(history)
    assert consumed_after == 2 + served  # the one admitted before (kept by the RDB), and this one
    print(
        f"\n{kind}: {len(refusals)} refusals while loading, states {sorted(states)}; "
        f"{len(decisions)} failure-mode answers"
    )


def _answers(cache: cache_pb2_grpc.CacheServiceStub, key: str) -> bool:
    try:
        cache.Get(cache_pb2.GetRequest(key=key), timeout=5)
    except grpc.RpcError:
        return False
    return True


# -- failed over -------------------------------------------------------------------------------------


def _promoted(replica: RedisProcess) -> bool:
    with replica.client() as r:
        return (
            r.info("replication")["role"] == "master"
            and "cluster_state:ok" in r.execute_command("CLUSTER", "INFO").decode()
        )


@pytest.mark.parametrize("how", ["master-killed", "manual-failover"])
def test_cluster_failover_to_a_replica_is_unavailable_then_served(
    how: str, deploy: Callable[..., Deployment], start_coord: Callable[..., CoordThread]
) -> None:
    deployment = deploy("cluster", replicas=True)
    victim = deployment.nodes[0]
    names = _names(deployment, victim)
    with victim.client() as r:
        victim_id = r.execute_command("CLUSTER", "MYID").decode()
    replica = next(n for n in deployment.replicas if _replica_of(n) == victim_id)
    server = start_coord(deployment.url, cluster=True)
    with Workload(server.target, names) as workload:
        workload.wait_rounds(15, "rounds before the failover")
        if how == "master-killed":
            _kill(victim)
        else:
            with replica.client() as r:
                r.execute_command("CLUSTER", "FAILOVER")
        wait_for(lambda: _promoted(replica), "the replica's promotion", timeout=60)
        promoted_at = len(workload.history.writes)
        workload.wait_rounds(15, "rounds after the failover")
    history = workload.history
    check_errors(history, allowed={"UNAVAILABLE"})
    # Fencing holds across the failover; grants never overlapped (one worker at a time).
    check_locks(history)
    check_rate_limit(history)
    if how == "manual-failover":  # coordinated: the replica had everything, nothing may be lost
        _check_all(server.target, workload, failures={"UNAVAILABLE"})
    else:
        # Asynchronous replication: what the master acknowledged last may be gone. Events are still
        # delivered or reported as a gap; writes acknowledged after the promotion are readable.
        _read_topic(server.target, history, "reader", names.topic)
        check_events(history)
        later = History()
        later.writes = history.writes[promoted_at:]
        _read_back(server.target, later)
        check_cache(later)
    print(f"\n{how}: failures {history.failure_codes()}")


def _replica_of(node: RedisProcess) -> str:
    with node.client() as r:
        for line in r.execute_command("CLUSTER", "NODES").decode().splitlines():
            fields = line.split()
            if "myself" in fields[2]:
                return fields[3]
    raise AssertionError("no myself line")
