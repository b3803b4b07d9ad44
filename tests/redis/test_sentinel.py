"""Coord on Redis Sentinel (``redis+sentinel://``): the URL rules, and a real failover.

The failover test runs a primary, a replica and three sentinels on 127.0.0.1, serves Coord against
the sentinels, and kills the primary (SIGKILL) while a workload of cache writes and lock grants runs.
What must hold on the recorded history: every failed call failed with UNAVAILABLE (never INTERNAL),
calls succeed again once a new primary is elected, the fencing tokens of all grants keep increasing
across the failover, and every cache write acknowledged after the failover is readable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis
import redis.asyncio
from redis.asyncio.sentinel import SentinelConnectionPool

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.events.v1 import events_pb2, events_pb2_grpc
from coord.lock.v1 import lock_pb2, lock_pb2_grpc
from coord_server.config import ConfigError, Settings
from coord_server.redact import redact_url
from coord_server.redis import RedisBackend
from coord_server.redis.coalesce import Coalescer
from coord_server.redis.security import RedisSecurity
from coord_server.sentinel_url import SentinelTarget, parse_sentinel_url

from ..conftest import REDIS_SERVER, CoordThread, RedisProcess, free_port, wait_for
from ..events.helpers import publish, publish_many, subscribe
from ..lock._util import dur

# The Debian package redis-sentinel (the Makefile's TOOLS); redis-server --sentinel is the same program.
REDIS_SENTINEL = shutil.which("redis-sentinel")
SERVICE = "mymaster"

# -- the URL -------------------------------------------------------------------------------------


def test_a_sentinel_url_names_sentinels_service_and_master_credentials() -> None:
    target = parse_sentinel_url("redis+sentinel://coord:s%40cret@h1:26379,h2,[::1]:26380/mymaster/2")
    assert target == SentinelTarget(
        sentinels=(("h1", 26379), ("h2", 26379), ("::1", 26380)),
        service="mymaster",
        username="coord",
        password="s@cret",
        db=2,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h1:26379", "service name"),
        ("redis+sentinel://h1:26379/", "service name"),
        ("redis+sentinel://h1:26379,/mymaster", "list of sentinels"),
        ("redis+sentinel://h1:0/mymaster", "port"),
        ("redis+sentinel://h1:x/mymaster", "port"),
        ("redis+sentinel://h1/mymaster/x", "not a number"),
        ("redis+sentinel://u:hunter2@h1/mymaster?password=hunter2", "no query options"),
    ],
)
def test_settings_refuse_an_unusable_sentinel_url_without_showing_its_password(
    url: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings(redis_url=url).validate()
    assert "hunter2" not in str(caught.value)


def test_a_sentinel_url_is_not_a_cluster_seed() -> None:
    with pytest.raises(ConfigError, match="cluster"):
        Settings(redis_url="redis+sentinel://h1/mymaster", redis_cluster=True).validate()


def test_the_backend_describes_sentinels_without_the_password_and_coalesces() -> None:
    backend = RedisBackend.from_url(
        "redis+sentinel://coord:hunter2@127.0.0.1:1,127.0.0.1:2/mymaster", cluster=False, timeout=1.0
    )
    assert backend.description == "sentinels redis+sentinel://coord:***@127.0.0.1:1,127.0.0.1:2/mymaster"
    # Not the single-node pipe: it would stay connected to wherever the master was at start.
    assert isinstance(backend._executor, Coalescer)


def test_the_master_password_comes_from_the_url_or_the_file_and_never_goes_to_the_sentinels(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "password"
    secret.write_text("hunter2\n")
    from_file = RedisBackend.from_url(
        "redis+sentinel://coord@127.0.0.1:1/mymaster",
        cluster=False,
        timeout=1.0,
        security=RedisSecurity(password_file=str(secret)),
    )
    from_url = RedisBackend.from_url(
        "redis+sentinel://coord:hunter2@127.0.0.1:1/mymaster", cluster=False, timeout=1.0
    )
    for backend in (from_file, from_url):
        assert isinstance(backend._client, redis.asyncio.Redis)
        pool = backend._client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        options = pool.connection_kwargs
        assert (options["username"], options["password"]) == ("coord", "hunter2")
        [sentinel] = pool.sentinel_manager.sentinels
        assert sentinel.connection_pool.connection_kwargs.get("password") is None
    with pytest.raises(ConfigError, match="PASSWORD_FILE"):
        Settings(redis_url="redis+sentinel://coord:x@h1/mymaster", redis_password_file=str(secret)).validate()


def test_a_sentinel_url_is_shown_without_its_password() -> None:
    shown = redact_url("redis+sentinel://coord:p@ss@h1:26379,[::1]:26380/mymaster")
    assert shown == "redis+sentinel://coord:***@h1:26379,[::1]:26380/mymaster"


# -- a real failover -------------------------------------------------------------------------------


@dataclass
class SentinelGroup:
    """A primary, a replica and three sentinels watching them, all on 127.0.0.1."""

    primary: RedisProcess
    replica: RedisProcess
    sentinel_ports: list[int]
    sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def ask(self, port: int, *command: str) -> object:
        with redis.Redis(port=port, socket_timeout=1.0, decode_responses=True) as r:
            return r.execute_command(*command)

    def master_port(self) -> int | None:
        """The master port the first sentinel that answers reports."""
        for port in self.sentinel_ports:
            try:
                reply = self.ask(port, "SENTINEL", "get-master-addr-by-name", SERVICE)
            except redis.RedisError:
                continue
            if isinstance(reply, list):
                return int(reply[1])
        return None

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.replica.stop()
        self.primary.stop()


def _start_sentinel(folder: Path, port: int, primary: int) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "sentinel.conf"  # rewritten by the sentinel itself, so its own file
    conf.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        "daemonize no\n"
        f"dir {folder}\n"
        f"logfile {folder / 'sentinel.log'}\n"
        "sentinel resolve-hostnames no\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 5000\n"
    )
    command = [REDIS_SENTINEL, str(conf)] if REDIS_SENTINEL else [REDIS_SERVER, str(conf), "--sentinel"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    primary = RedisProcess(tmp_path / "primary").start()
    replica = RedisProcess(tmp_path / "replica", extra=("--replicaof", "127.0.0.1", str(primary.port)))
    group = SentinelGroup(primary, replica, [free_port() for _ in range(3)])
    try:
        replica.start()
        with replica.client() as r:
            wait_for(lambda: r.info("replication")["master_link_status"] == "up", "the replica's sync")
        for i, port in enumerate(group.sentinel_ports):
            group.sentinels.append(_start_sentinel(tmp_path / f"sentinel-{i}", port, primary.port))

        def ready() -> bool:
            # A failover needs each sentinel to know its two peers and the replica.
            try:
                return all(
                    len(group.ask(port, "SENTINEL", "sentinels", SERVICE)) == 2  # type: ignore[arg-type]
                    and len(group.ask(port, "SENTINEL", "replicas", SERVICE)) == 1  # type: ignore[arg-type]
                    for port in group.sentinel_ports
                )
            except redis.RedisError:
                return False

        wait_for(ready, "the sentinels to find each other and the replica", timeout=60)
        yield group
    finally:
        group.stop()


@dataclass
class History:
    """What the workload saw: failure codes, grants' fencing tokens, acknowledged writes."""

    failures: list[grpc.StatusCode] = field(default_factory=list)
    fencing: list[int] = field(default_factory=list)
    acked: dict[str, bytes] = field(default_factory=dict)
    grants_after_failover: int = 0
    successes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, rpc: Callable[..., object], request: object) -> object | None:
        try:
            reply = rpc(request, timeout=10)
        except grpc.RpcError as exc:
            with self.lock:
                self.failures.append(exc.code())
            return None
        with self.lock:
            self.successes += 1
        return reply


def _workload(target: str, history: History, stop: threading.Event, after_failover: threading.Event) -> None:
    """Cache writes and lock grants (each released) until ``stop``, one call at a time."""
    with grpc.insecure_channel(target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        locks = lock_pb2_grpc.LockServiceStub(channel)
        n = 0
        while not stop.is_set():
            n += 1
            key, value = f"k{n}", f"v{n}".encode()
            # Only writes acknowledged after the new primary is known are promised to survive.
            recorded = after_failover.is_set()
            request = cache_pb2.SetRequest(key=key, value=value, ttl=dur(600))
            if history.call(cache.Set, request) is not None and recorded:
                with history.lock:
                    history.acked[key] = value
            # A short TTL: a grant whose release failed during the election frees the name soon.
            acquire = lock_pb2.AcquireRequest(name="F", mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=dur(2))
            reply = history.call(locks.Acquire, acquire)
            if isinstance(reply, lock_pb2.AcquireResponse) and reply.acquired:
                with history.lock:
                    history.fencing.append(reply.grant.fencing_token)
                    history.grants_after_failover += recorded
                release = lock_pb2.ReleaseRequest(name="F", lock_token=reply.grant.lock_token)
                history.call(locks.Release, release)


def test_a_failover_is_unavailable_then_served_with_fencing_and_writes_kept(
    sentinel_group: SentinelGroup, start_coord: Callable[..., CoordThread]
) -> None:
    group = sentinel_group
    server = start_coord(group.url)
    history = History()
    stop, after_failover = threading.Event(), threading.Event()
    worker = threading.Thread(target=_workload, args=(server.target, history, stop, after_failover))
    worker.start()
    try:
        wait_for(lambda: len(history.fencing) >= 20, "grants before the failover", timeout=60)
        old = group.primary.proc
        assert old is not None
        os.kill(old.pid, signal.SIGKILL)
        old.wait()
        group.primary.proc = None
        wait_for(lambda: group.master_port() == group.replica.port, "the replica's promotion", timeout=90)
        after_failover.set()
        with history.lock:
            served_before = history.successes
        wait_for(lambda: len(history.acked) >= 20, "acknowledged writes after the failover", timeout=90)
        wait_for(lambda: history.grants_after_failover >= 20, "grants after the failover", timeout=90)
        assert history.successes > served_before
    finally:
        stop.set()
        worker.join(60)

    # The election was seen, and only as UNAVAILABLE.
    assert history.failures, "no call failed while the primary was gone"
    assert set(history.failures) == {grpc.StatusCode.UNAVAILABLE}, history.failures
    # Fencing: every grant's token is above the one before, across the failover.
    assert all(a < b for a, b in zip(history.fencing, history.fencing[1:], strict=False)), history.fencing
    # What was acknowledged on the new primary is there.
    with grpc.insecure_channel(server.target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        for key, value in history.acked.items():
            entry = cache.Get(cache_pb2.GetRequest(key=key), timeout=10).entry
            assert entry.found and entry.value == value, key


def test_a_failover_to_a_replica_that_was_behind_reports_the_lost_events_as_a_gap(
    sentinel_group: SentinelGroup, start_coord: Callable[..., CoordThread]
) -> None:
    """Events acknowledged by the old primary that never reached the replica are not silently lost:
    the live subscriber's stream ends (it must resume), and resuming from its cursor on the new
    primary starts with a Gap; events published after the failover follow it."""
    group = sentinel_group
    server = start_coord(group.url)
    topic = "failover.events"
    with grpc.insecure_channel(server.target) as channel:
        stub = events_pb2_grpc.EventsServiceStub(channel)
        kept = publish_many(stub, topic, [b"a", b"b"])
        with group.primary.client() as p:
            assert p.wait(1, 10_000) == 1  # the replica has "a" and "b"
        live = subscribe(stub, topic, cursors=[events_pb2.TopicCursor(topic=topic, after_id=kept[-1])])
        live.next_of("subscribed")
        # The replica stops, and the primary drops its link: what follows reaches only the primary.
        replica_proc = group.replica.proc
        assert replica_proc is not None
        os.kill(replica_proc.pid, signal.SIGSTOP)
        try:
            with group.primary.client() as p:
                p.execute_command("CLIENT", "KILL", "TYPE", "replica")
            lost = publish_many(stub, topic, [b"c", b"d"])
            assert [e.id for e in live.events(2)] == lost  # delivered, so the cursor is past them
            old = group.primary.proc
            assert old is not None
            os.kill(old.pid, signal.SIGKILL)
            old.wait()
            group.primary.proc = None
        finally:
            os.kill(replica_proc.pid, signal.SIGCONT)
        wait_for(lambda: group.master_port() == group.replica.port, "the replica's promotion", timeout=90)
        # The live stream does not go on as if nothing happened: it ends, and the client resumes.
        ended = live.wait_error(timeout=30)
        assert ended.code() == grpc.StatusCode.UNAVAILABLE, ended.details()
        cursor = [events_pb2.TopicCursor(topic=topic, after_id=lost[-1])]

        def resumed_with_a_gap() -> bool:
            try:
                stream = subscribe(stub, topic, cursors=cursor)
                stream.next_of("subscribed")
            except (AssertionError, grpc.RpcError):
                return False  # the new primary is not reachable through Coord yet
            frame = stream.next()
            stream.cancel()
            assert frame.WhichOneof("frame") == "gap", frame
            assert (frame.gap.after_id, frame.gap.first_available_id) == (lost[-1], "")
            return True

        wait_for(resumed_with_a_gap, "a resumed subscription on the new primary", timeout=60)
        with group.replica.client() as r:
            while int(r.time()[0]) * 1000 <= int(lost[-1].split("-")[0]):  # new ids after the lost ones
                time.sleep(0.01)
        new = publish(stub, topic, b"e")
        again = subscribe(stub, topic, cursors=cursor)
        again.next_of("subscribed")
        first = again.next()
        assert first.WhichOneof("frame") == "gap", first
        assert (first.gap.after_id, first.gap.first_available_id) == (lost[-1], new)
        assert [(e.id, e.data) for e in again.events(1)] == [(new, b"e")]
        again.cancel()
