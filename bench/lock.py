"""Lock: acquire then release of an exclusive lock, against redis-py's ``redis.asyncio.lock.Lock``.

``lock.acquire_release``: a try-acquire (30 s lease) then a release with the grant's token; each
operation uses its own lock name, so nothing ever waits. redis-py's Lock is a ``SET NX PX`` plus a
Lua compare-and-delete: no fencing token, no queue, no history. Coord's grant also carries a
fencing token and keeps a short history so a repeated Release is answered exactly.

``lock.contended``: every caller takes and releases ONE lock, with a blocking acquire: Coord's
Acquire with a ``wait`` (the caller queues, FIFO, and is woken by the release) against redis-py's
``acquire(blocking=True)``, which retries ``SET NX`` every ``sleep`` seconds (0.1 by default; a
second baseline polls every 0.01 s). One caller is the uncontended case; 8 callers contend. Each
side also measures the hand-off latency: for every release made while other callers were waiting,
the time from the release (the holder's call to release, on this process's monotonic clock) to the
grant of a caller that was already waiting then. A caller that releases and at once takes the lock
again ahead of the waiters (redis-py's waiters are asleep) does not end the hand-off: it ends only
when a waiter holds the lock. And each side's fairness: the share of the pairs that the busiest of
the 8 callers took (1/8 for a FIFO lock).

Plus Redis memory per held lock, over ``plan.memory_keys`` locks held at once (10,000; 2,000 with
``--quick``).
"""

from __future__ import annotations

import asyncio
import itertools
import time

from google.protobuf.duration_pb2 import Duration

from coord.lock.v1 import lock_pb2, lock_pb2_grpc

from ._harness import Benchmark, Env, Row, Side, compare, progress, redis_cpu_rows, sample_rows

NAMES = 1000
TTL = Duration(seconds=30)
CONTENDERS = 8
WAIT_S = 10  # longer than any hand-off: a caller that waits this long fails the run


def _names(count: int, prefix: str = "bench:") -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(count)]


async def bench_acquire_release(env: Env) -> list[Row]:
    stub = lock_pb2_grpc.LockServiceStub(env.coord)
    names = _names(NAMES)
    acquires = [lock_pb2.AcquireRequest(name=n, mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=TTL) for n in names]
    redis = env.redis
    # A distinct name per worker round: i cycles over NAMES, far more than the concurrent callers.

    async def coord(i: int) -> None:
        reply = await stub.Acquire(acquires[i % NAMES])
        if not reply.acquired:
            raise RuntimeError("Coord refused an uncontended lock")
        await stub.Release(lock_pb2.ReleaseRequest(name=names[i % NAMES], lock_token=reply.grant.lock_token))

    async def redis_lock(i: int) -> None:
        lock = redis.lock("rpy:" + names[i % NAMES], timeout=30)
        if not await lock.acquire(blocking=False):
            raise RuntimeError("redis-py refused an uncontended lock")
        await lock.release()

    return await compare(
        env,
        "lock.Acquire + Release (exclusive, uncontended)",
        Side("Coord", coord, env.coord_pid),
        [Side("redis-py asyncio Lock", redis_lock, env.redis_pid)],
    )


class _Handoffs:
    """Hand-off latencies of one side, on ``time.perf_counter_ns`` (one clock for every caller).

    A release made while other callers wait opens a hand-off; the next grant to a caller that was
    already waiting at that release closes it. Releases that no waiter saw yet stay open (a caller
    that took the lock back first does not close them).
    """

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._waiting: dict[int, int] = {}  # caller -> when its acquire began
        self._open: list[int] = []  # releases no waiter has followed yet
        self._samples: list[int] = []

    def acquiring(self) -> int:
        caller = next(self._ids)
        self._waiting[caller] = time.perf_counter_ns()
        return caller

    def granted(self, caller: int) -> None:
        now = time.perf_counter_ns()
        began = self._waiting.pop(caller)
        closed = [r for r in self._open if began < r]
        if closed:
            self._samples.extend(now - r for r in closed)
            self._open = [r for r in self._open if began >= r]

    def releasing(self) -> None:
        if self._waiting:
            self._open.append(time.perf_counter_ns())

    def drain(self) -> list[int]:
        samples, self._samples, self._open = self._samples, [], []
        return samples


def _coord_contended(env: Env, name: str) -> Side:
    stub = lock_pb2_grpc.LockServiceStub(env.coord)
    request = lock_pb2.AcquireRequest(
        name=name, mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=TTL, wait=Duration(seconds=WAIT_S)
    )
    handoffs = _Handoffs()

    async def op(_: int) -> None:
        caller = handoffs.acquiring()
        reply = await stub.Acquire(request, timeout=WAIT_S + 5)
        if not reply.acquired:
            raise RuntimeError(f"Coord did not grant a contended lock within {WAIT_S}s")
        handoffs.granted(caller)
        handoffs.releasing()
        await stub.Release(lock_pb2.ReleaseRequest(name=name, lock_token=reply.grant.lock_token))

    return Side("Coord (Acquire with wait)", op, env.coord_pid, env.redis_pid, handoffs.drain)


def _redis_contended(env: Env, label: str, name: str, sleep: float) -> Side:
    redis = env.redis
    handoffs = _Handoffs()

    async def op(_: int) -> None:
        lock = redis.lock(name, timeout=30, sleep=sleep, blocking_timeout=WAIT_S)
        caller = handoffs.acquiring()
        if not await lock.acquire(blocking=True):
            raise RuntimeError(f"redis-py did not get a contended lock within {WAIT_S}s")
        handoffs.granted(caller)
        handoffs.releasing()
        await lock.release()

    return Side(label, op, env.redis_pid, env.redis_pid, handoffs.drain)


async def bench_contended(env: Env) -> list[Row]:
    """Pairs per second on one lock, 1 and 8 callers, and the hand-off latency with 8."""
    operation = "lock pairs on ONE lock (blocking acquire)"
    rows = await compare(
        env,
        operation,
        _coord_contended(env, "bench:one"),
        [
            _redis_contended(env, "redis-py asyncio Lock (sleep 0.1)", "rpy:one", 0.1),
            _redis_contended(env, "redis-py asyncio Lock (sleep 0.01)", "rpy:one:fast", 0.01),
        ],
        levels=(1, CONTENDERS),
    )
    handoffs = sample_rows(rows, "lock hand-off: release to next waiter's grant")
    for row in handoffs:
        progress(
            f"lock hand-off c={row.concurrency}: Coord p50 {row.coord:.2f} ms, "
            f"{row.baseline_name} p50 {row.baseline:.2f} ms"
        )
    fairness = await _fairness_rows(env)
    redis_cpu = redis_cpu_rows(rows, "lock pairs on ONE lock: Redis CPU per pair", "µs/pair")
    return rows + handoffs + fairness + redis_cpu


async def _busiest_share(side: Side, seconds: float) -> float:
    """Of the pairs CONTENDERS callers complete in ``seconds``, the share the busiest caller took."""
    counts = [0] * CONTENDERS
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        while time.perf_counter() < stop:
            await side.op(0)
            counts[w] += 1

    await asyncio.gather(*(worker(w) for w in range(CONTENDERS)))
    return max(counts) / max(1, sum(counts))


async def _fairness_rows(env: Env) -> list[Row]:
    """Pairs per second say nothing of who got them: a lock whose releaser takes it straight back
    while the others sleep (redis-py's) scores well and starves them. A FIFO lock gives each of the
    8 callers 1/8."""
    operation = "lock pairs on ONE lock: busiest caller's share of pairs"
    seconds = max(1.0, env.plan.duration)
    coord = await _busiest_share(_coord_contended(env, "bench:fair"), seconds)
    rows = []
    for label, name, sleep in (
        ("redis-py asyncio Lock (sleep 0.1)", "rpy:fair", 0.1),
        ("redis-py asyncio Lock (sleep 0.01)", "rpy:fair:fast", 0.01),
    ):
        theirs = await _busiest_share(_redis_contended(env, label, name, sleep), seconds)
        progress(f"lock fairness c={CONTENDERS}: busiest caller Coord {coord:.0%}, {label} {theirs:.0%}")
        rows.append(Row(operation, label, "% of pairs", coord * 100, theirs * 100, CONTENDERS))
    return rows


async def _used_memory(env: Env) -> int:
    return int((await env.redis.info("memory"))["used_memory"])


async def bench_memory(env: Env) -> list[Row]:
    """``used_memory`` growth per held lock, over ``plan.memory_keys`` locks held at once."""
    stub = lock_pb2_grpc.LockServiceStub(env.coord)
    count = env.plan.memory_keys
    names = _names(count, "mem:")
    await env.redis.flushall()
    before = await _used_memory(env)
    for name in names:
        reply = await stub.Acquire(
            lock_pb2.AcquireRequest(name=name, mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=TTL)
        )
        if not reply.acquired:
            raise RuntimeError("Coord refused an uncontended lock")
    coord = (await _used_memory(env) - before) / count
    await env.redis.flushall()
    before = await _used_memory(env)
    for name in names:
        await env.redis.lock(name, timeout=30).acquire(blocking=False)
    plain = (await _used_memory(env) - before) / count
    await env.redis.flushall()
    progress(f"lock memory: Coord {coord:.0f} bytes/lock, redis-py Lock {plain:.0f} bytes/lock")
    return [Row("lock memory per held lock", "redis-py asyncio Lock", "bytes/key", coord, plain)]


BENCHMARKS = (
    Benchmark("lock.acquire_release", bench_acquire_release),
    Benchmark("lock.contended", bench_contended),
    Benchmark("lock.memory", bench_memory),
)
