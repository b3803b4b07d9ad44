"""Network faults between Coord and Redis, on a single node and on a 3-master Cluster.

Each test runs one workload over all four promises at once — exclusive locks (try-lock Acquire with a
short lease, Release), a fixed-window rate limit hammered by several threads, events (a publisher and
a subscriber that records deliveries and gaps) and cache writes read back — through a proxy between
Coord and Redis (``proxy.Proxy``; one per Cluster node). It lets the workload run healthy, turns a
fault on for a while, lifts it, and then checks:

- the invariants, on the recorded history (``history.check_*``): lock grants never overlap and
  fencing tokens increase; no window admits more than the limit; every acknowledged event is delivered
  or covered by a reported gap; every acknowledged cache write (or a later one) is what is read back;
- that every failed call failed with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED (never
  INTERNAL or UNKNOWN), and that Coord logged no error;
- that once healed, every kind of call succeeds again (counted, within a generous bound).

Phases end on counts (so many calls completed while the fault was on), never on a timer's verdict.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from coord_client import NO_RETRY, Client, CoordError
from coord_client.events.models import Gap

from ..conftest import CoordThread, wait_for
from .conftest import Proxied, ProxiedCluster
from .history import (
    History,
    check_cache,
    check_errors,
    check_events,
    check_locks,
    check_rate_limit,
    position,
)

LOCK = "faults/L"
LEASE = 2.0  # short, so that a grant whose answer was lost frees the lock again soon
RATE_KEY = "faults/api"
RATE_LIMIT, RATE_PERIOD = 20, 1.0
TOPIC = "faults.events"
CACHE_KEYS = [f"faults/c{i}" for i in range(6)]
CALL_TIMEOUT = 5.0  # the client's deadline per call; Coord's Redis timeout is 1 s (make_settings)
PHASE = 60.0  # generous bound on any one phase: reached only when something is stuck

# What "the service answers" means, per kind of call: successes counted by the workload.
ANSWERS = ("lock.granted", "ratelimit.decided", "events.published", "events.delivered", "cache.read")


class Workload:
    """Threads calling Coord in a loop and recording what they saw into ``history``."""

    def __init__(self, target: str, history: History, *, value_size: int = 64) -> None:
        self.client = Client(target, timeout=CALL_TIMEOUT)
        self.history = history
        self.value_size = value_size
        self.stop = threading.Event()
        self.stop_publishing = threading.Event()
        self._counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._subscription: Any = None
        self._subscriber_done = threading.Event()
        self.crashes: list[str] = []

    # -- counters ------------------------------------------------------------------------------

    def count(self, what: str, n: int = 1) -> None:
        with self._count_lock:
            self._counts[what] += n

    def counts(self) -> Counter[str]:
        with self._count_lock:
            return Counter(self._counts)

    def wait_for_more(self, n: int, kinds: tuple[str, ...], what: str, timeout: float = PHASE) -> None:
        """Wait until each of ``kinds`` counted ``n`` more than now."""
        start = self.counts()

        def enough() -> bool:
            now = self.counts()
            self._check_alive()
            return all(now[k] - start[k] >= n for k in kinds)

        try:
            wait_for(enough, what, timeout)
        except TimeoutError:
            now = self.counts()
            progress = {k: now[k] - start[k] for k in kinds}
            raise TimeoutError(
                f"timed out waiting for {what}: progress {progress}, failures {self.history.failure_codes()}"
            ) from None

    def _check_alive(self) -> None:
        if self.crashes:
            raise AssertionError(f"a workload thread crashed: {self.crashes}")

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> Workload:
        marker = self.client.events.publish(TOPIC, b"marker")
        self.history.subscriber_started("sub", TOPIC, marker.id)
        workers: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
            (self._subscriber, (marker.id,)),
            (self._publisher, ()),
            *((self._locker, (f"locker-{i}",)) for i in range(3)),
            *((self._limiter, (f"limiter-{i}",)) for i in range(2)),
            *((self._cacher, (f"cacher-{i}",)) for i in range(2)),
        ]
        for target, args in workers:
            thread = threading.Thread(target=self._guard, args=(target, *args), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _guard(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except Exception as exc:  # an unexpected exception is a finding, not a hang
            self.crashes.append(f"{target.__name__}{args}: {exc!r}")
            logging.getLogger(__name__).exception("workload thread crashed")

    def finish(self) -> None:
        """Stop calling, let the subscriber catch up with the last acknowledged event, then close."""
        self.stop_publishing.set()
        self.stop.set()
        for thread in self._threads[1:]:
            thread.join(PHASE)
        acked = [position(p.id) for p in self.history.published]
        last = max(acked) if acked else (0, 0)

        def caught_up() -> bool:
            self._check_alive()
            sub = self.history.subscribers["sub"]
            seen = [position(i) for i, _ in sub.delivered] + [position(b) for _, b in sub.gaps]
            return bool(seen) and max(seen) >= last

        try:
            wait_for(caught_up, "the subscriber to reach the last acknowledged event", PHASE)
        except TimeoutError:
            pass  # check_events says what is missing
        finally:
            if self._subscription is not None:
                self._subscription.close()
            self._threads[0].join(PHASE)
            self.client.close()
        self._check_alive()

    # -- workers -------------------------------------------------------------------------------

    def _locker(self, name: str) -> None:
        h = self.history
        while not self.stop.is_set():
            sent = h.now()
            try:
                result = self.client.lock.acquire(LOCK, ttl=LEASE, owner=name)
            except CoordError as exc:
                h.failed("lock.acquire", exc)
                self.count("lock.failed")
                continue
            finally:
                self.count("lock.done")
            h.ok("lock.acquire")
            if not result or result.grant is None:
                time.sleep(0.01)
                continue
            self.count("lock.granted")
            grant = h.lock_granted(
                LOCK, name, result.fencing_token, requested_at=sent, lease_until=sent + result.grant.valid_for
            )
            time.sleep(0.005)  # the critical section
            h.lock_released(grant)
            try:
                self.client.lock.release(LOCK, result.lock_token)
                h.ok("lock.release")
            except CoordError as exc:
                h.failed("lock.release", exc)

    def _limiter(self, name: str) -> None:
        h = self.history
        while not self.stop.is_set():
            try:
                decision = self.client.limit(
                    RATE_KEY, rate=f"{RATE_LIMIT}/{RATE_PERIOD:g}s", algorithm="fixed_window"
                )
            except CoordError as exc:
                h.failed("ratelimit.check", exc)
                self.count("ratelimit.failed")
                continue
            finally:
                self.count("ratelimit.done")
            h.ok("ratelimit.check")
            h.rate_decision(
                RATE_KEY,
                limit=RATE_LIMIT,
                period=RATE_PERIOD,
                allowed=decision.allowed,
                decide_time=decision.decide_time,
                backend_unavailable=decision.backend_unavailable,
            )
            self.count("ratelimit.unavailable" if decision.backend_unavailable else "ratelimit.decided")
            time.sleep(0.01)

    def _publisher(self) -> None:
        h = self.history
        for n in itertools.count():
            if self.stop_publishing.is_set():
                return
            data = f"event-{n}".encode()
            try:
                result = self.client.events.publish(TOPIC, data)
            except CoordError as exc:
                h.failed("events.publish", exc)
                h.publish_unknown(TOPIC, data)
                self.count("events.failed")
                continue
            finally:
                self.count("events.done")
            h.ok("events.publish")
            h.event_published(TOPIC, result.id, data)
            self.count("events.published")
            time.sleep(0.01)

    def _subscriber(self, after: str) -> None:
        h = self.history

        def on_gap(gap: Gap) -> None:
            h.gap_reported("sub", gap.after_id, gap.first_available_id)

        subscription = self.client.events.subscribe(TOPIC, after=after, heartbeat=1.0, on_gap=on_gap)
        self._subscription = subscription
        try:
            for event in subscription:
                h.event_delivered("sub", event.id, event.data)
                self.count("events.delivered")
        except CoordError as exc:  # a subscription resumes by itself after UNAVAILABLE; not after this
            h.failed("events.subscribe", exc)

    def _cacher(self, name: str) -> None:
        h = self.history
        for n in itertools.count():
            if self.stop.is_set():
                return
            key = CACHE_KEYS[n % len(CACHE_KEYS)]
            value = f"{name}:{n}:".encode().ljust(self.value_size, b".")
            started = h.now()
            try:
                stored = self.client.cache.set(key, value, ttl=300)
            except CoordError as exc:
                h.failed("cache.set", exc)
                h.cache_write(key, value, started=started, acked=False)
                self.count("cache.failed")
                self.count("cache.done")
                continue
            h.ok("cache.set")
            h.cache_write(key, value, started=started, acked=True, version=stored.version)
            started = h.now()
            try:
                entry = self.client.cache.get(key)
            except CoordError as exc:
                h.failed("cache.get", exc)
                self.count("cache.failed")
                continue
            finally:
                self.count("cache.done")
            h.ok("cache.get")
            h.cache_read(key, entry.value if entry.found else None, started=started, version=entry.version)
            self.count("cache.read")
            time.sleep(0.01)


@pytest.fixture
def coord_errors(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """What Coord logged at ERROR or above (an error it could not classify, or a crashed task)."""
    caplog.set_level(logging.WARNING, logger="coord_server")

    def errors() -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            for r in caplog.records
            if r.levelno >= logging.ERROR and r.name.startswith("coord_server")
        ]

    yield errors


class ShutdownHang(Exception):
    """Coord did not stop: not an AssertionError, so that no xfail(raises=AssertionError) hides it."""


def stop_cleanly(coord: CoordThread) -> None:
    """Stop Coord and fail, naming what it still waits on, if it does not stop (a shutdown that hangs
    after a fault is a finding too; ``CoordThread.stop`` alone gives up silently)."""
    coord.stop()
    if not coord._thread.is_alive():
        return
    stacks = io.StringIO()
    try:
        for task in list(asyncio.all_tasks(coord.loop)):  # racy from this thread, but only read
            stacks.write(f"--- {task!r}\n")
            # Not task.print_stack: grpc's Cython frames have no line number and make linecache raise.
            for frame in task.get_stack(limit=8):
                code = frame.f_code
                stacks.write(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}\n")
    except RuntimeError as exc:
        stacks.write(f"(could not list its tasks: {exc})")
    raise ShutdownHang(f"Coord did not stop after the fault was healed; its tasks:\n{stacks.getvalue()}")


def run_scenario(
    backing: Proxied,
    start: Callable[..., CoordThread],
    fault: Callable[[Workload], None],
    coord_errors: Callable[[], list[str]],
    *,
    value_size: int = 64,
) -> History:
    """Workload healthy, then ``fault(workload)`` (which turns the fault on, waits on counts, and
    leaves it on), then healed; then every check."""
    coord = start(backing.url, cluster=backing.cluster)
    history = History()
    workload = Workload(coord.target, history, value_size=value_size).start()
    try:
        workload.wait_for_more(3, ANSWERS, "the healthy workload")
        fault(workload)
    finally:
        backing.proxies.heal()
    try:
        workload.wait_for_more(3, ANSWERS, "every kind of call to succeed again after healing")
    finally:
        workload.finish()
    stop_cleanly(coord)
    logging.getLogger(__name__).info("history: %s; failures: %s", history.summary(), history.failure_codes())
    check_errors(history)
    check_locks(history)
    check_rate_limit(history)
    check_events(history)
    check_cache(history)
    assert coord_errors() == []
    return history


# ---------------------------------------------------------------- the scenarios


def test_slow_redis(proxied: Proxied, start_coord: Callable[..., CoordThread], coord_errors: Any) -> None:
    """Latency: first below Coord's Redis timeout (calls succeed, slowly), then above it (calls fail
    UNAVAILABLE or DEADLINE_EXCEEDED, at once, no hang), then none."""

    def fault(workload: Workload) -> None:
        proxied.proxies.latency(0.15)
        workload.wait_for_more(3, ANSWERS, "calls to succeed through 150 ms of latency")
        before = workload.counts()
        proxied.proxies.latency(1.5)  # a round trip of 3 s: beyond the 1 s Redis timeout
        workload.wait_for_more(2, ("lock.done", "cache.done", "events.done", "ratelimit.done"), "slow calls")
        after = workload.counts()
        failed = sum(after[k] - before[k] for k in ("lock.failed", "cache.failed", "events.failed"))
        unavailable = after["ratelimit.unavailable"] - before["ratelimit.unavailable"]
        assert failed > 0 and unavailable > 0, "a round trip beyond the Redis timeout must fail"

    history = run_scenario(proxied, start_coord, fault, coord_errors)
    assert set(history.failure_codes()) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}


def test_blackholed_redis(
    proxied: Proxied, start_coord: Callable[..., CoordThread], coord_errors: Any
) -> None:
    """Nothing moves between Coord and Redis: calls fail UNAVAILABLE within the Redis timeout, a rate
    limit fails closed, and everything resumes once the path is back."""

    def fault(workload: Workload) -> None:
        before = proxied.proxies.stats()
        proxied.proxies.blackhole()
        workload.wait_for_more(
            2, ("lock.failed", "cache.failed", "events.failed", "ratelimit.unavailable"), "calls to fail"
        )
        # Nothing reached Redis meanwhile (a chunk already being written may have finished).
        assert proxied.proxies.stats().bytes_up - before.bytes_up < 64 * 1024

    history = run_scenario(proxied, start_coord, fault, coord_errors)
    assert history.failure_codes().get("UNAVAILABLE", 0) > 0


def test_connection_reset(
    proxied: Proxied, start_coord: Callable[..., CoordThread], coord_errors: Any
) -> None:
    """Every Coord-Redis connection reset (RST) again and again, and for a while every new one too:
    calls in flight fail UNAVAILABLE, Coord reconnects, no write is reported lost when it was stored."""

    def fault(workload: Workload) -> None:
        for _ in range(3):
            assert proxied.proxies.reset_all() > 0
            workload.wait_for_more(2, ANSWERS, "calls to succeed on new connections")
        before = proxied.proxies.stats()
        proxied.proxies.refuse()
        proxied.proxies.reset_all()
        workload.wait_for_more(
            2, ("lock.failed", "cache.failed", "events.failed", "ratelimit.unavailable"), "calls to fail"
        )
        assert proxied.proxies.stats().refused > before.refused  # Coord kept trying to reconnect

    history = run_scenario(proxied, start_coord, fault, coord_errors)
    assert history.failure_codes().get("UNAVAILABLE", 0) > 0


def test_slow_reads(proxied: Proxied, start_coord: Callable[..., CoordThread], coord_errors: Any) -> None:
    """Redis's replies trickle to Coord (4 KB/s, with 2 KB cache values): calls slow down or time
    out, a connection presumed dead is replaced, and nothing is lost or duplicated."""

    def fault(workload: Workload) -> None:
        before = proxied.proxies.stats()
        proxied.proxies.slow_reads(4000)
        workload.wait_for_more(2, ("lock.done", "cache.done", "events.done", "ratelimit.done"), "slow calls")
        assert proxied.proxies.stats().bytes_down > before.bytes_down

    run_scenario(proxied, start_coord, fault, coord_errors, value_size=2048)


def keys_on_node(backing: ProxiedCluster, index: int, keys: list[str]) -> set[str]:
    """The cache keys whose slot the ``index``-th node owns (a cache key's hash tag is the key)."""
    port = backing.proxies[index].port
    with backing.direct()[index] as r:
        slots = r.execute_command("CLUSTER", "SLOTS")
        mine = set()
        for key in keys:
            slot = int(r.execute_command("CLUSTER", "KEYSLOT", "{" + key + "}"))
            owner = next(int(entry[2][1]) for entry in slots if entry[0] <= slot <= entry[1])
            if owner == port:
                mine.add(key)
    return mine


def one_node_blackholed(
    backing: ProxiedCluster, start_coord: Callable[..., CoordThread], *, concurrently: bool
) -> None:
    """Blackhole the first master only and read keys of every node: those on its slots must fail
    UNAVAILABLE, the others must answer; once healed, all answer."""
    coord = start_coord(backing.url, cluster=True)
    keys = [f"faults/k{i}" for i in range(12)]
    on_first = keys_on_node(backing, 0, keys)
    assert on_first and len(on_first) < len(keys)
    history = History()
    # No retries: each failure is one answer of Coord's, not the client's retries running out the deadline.
    with Client(coord.target, timeout=CALL_TIMEOUT, retry=NO_RETRY) as client:
        for key in keys:
            client.cache.set(key, key.encode(), ttl=300)
            history.cache_write(key, key.encode(), started=0.0, acked=True, finished=0.0)
        wrong: list[str] = []

        def get(key: str) -> None:
            started = history.now()
            try:
                entry = client.cache.get(key, timeout=CALL_TIMEOUT)
            except CoordError as exc:
                history.failed("cache.get", exc)
                if key not in on_first:
                    wrong.append(f"{key} (on a healthy node) failed: {exc}")
                return
            history.cache_read(key, entry.value if entry.found else None, started=started)
            if key in on_first:
                wrong.append(f"{key} answered through a blackholed node")

        backing.proxies[0].blackhole()
        try:
            if concurrently:
                threads = [threading.Thread(target=get, args=(key,)) for key in keys * 2]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(PHASE)
            else:
                for key in keys:
                    get(key)
        finally:
            backing.proxies.heal()
        check_errors(history)

        def all_answer() -> bool:
            try:
                return all(client.cache.get(key).value == key.encode() for key in keys)
            except CoordError:
                return False

        wait_for(all_answer, "every key to answer after healing", PHASE)
        check_cache(history)
    stop_cleanly(coord)
    # Last, so that the checks above run whatever this part finds.
    calls = (len(keys) - len(on_first)) * (1 + concurrently)
    failed_healthy = sum("healthy" in w for w in wrong)
    assert not wrong, f"{failed_healthy} of {calls} calls to healthy nodes failed:\n" + "\n".join(wrong)
    assert history.failure_codes() == {"UNAVAILABLE": len(on_first) * (1 + concurrently)}


def test_one_cluster_node_blackholed(
    proxied_cluster: ProxiedCluster, start_coord: Callable[..., CoordThread], coord_errors: Any
) -> None:
    """One master of three unreachable, calls one at a time: those on its slots fail UNAVAILABLE
    within the Redis timeout, the others succeed, and all succeed once it is back."""
    one_node_blackholed(proxied_cluster, start_coord, concurrently=False)
    assert coord_errors() == []


def test_one_cluster_node_blackholed_concurrent_calls_to_other_nodes_succeed(
    proxied_cluster: ProxiedCluster, start_coord: Callable[..., CoordThread]
) -> None:
    """The same with calls in parallel: a call on a healthy master must not fail for another's fault
    (the coalescer keeps a lane per master, so a pipeline stuck on the dead one holds only its own)."""
    one_node_blackholed(proxied_cluster, start_coord, concurrently=True)
