"""Lock: try-acquire then release of an exclusive lock, against redis-py's ``redis.asyncio.lock.Lock``.

Both sides do the same two round trips per operation (acquire with a 30 s lease, then release with
the grant's token); each operation uses its own lock name, so nothing ever waits. redis-py's Lock is
a ``SET NX PX`` plus a Lua compare-and-delete: no fencing token, no queue, no history. Coord's grant
also carries a fencing token and keeps a short history so a repeated Release is answered exactly.

Plus Redis memory per held lock, over 10,000 locks held at once.
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from coord.lock.v1 import lock_pb2, lock_pb2_grpc

from ._harness import Benchmark, Env, Row, Side, compare, progress

NAMES = 1000
TTL = Duration(seconds=30)
MEMORY_LOCKS = 10_000


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


async def _used_memory(env: Env) -> int:
    return int((await env.redis.info("memory"))["used_memory"])


async def bench_memory(env: Env) -> list[Row]:
    """``used_memory`` growth per held lock, over 10,000 locks held at once."""
    stub = lock_pb2_grpc.LockServiceStub(env.coord)
    names = _names(MEMORY_LOCKS, "mem:")
    await env.redis.flushall()
    before = await _used_memory(env)
    for name in names:
        reply = await stub.Acquire(
            lock_pb2.AcquireRequest(name=name, mode=lock_pb2.LOCK_MODE_EXCLUSIVE, ttl=TTL)
        )
        if not reply.acquired:
            raise RuntimeError("Coord refused an uncontended lock")
    coord = (await _used_memory(env) - before) / MEMORY_LOCKS
    await env.redis.flushall()
    before = await _used_memory(env)
    for name in names:
        await env.redis.lock(name, timeout=30).acquire(blocking=False)
    plain = (await _used_memory(env) - before) / MEMORY_LOCKS
    await env.redis.flushall()
    progress(f"lock memory: Coord {coord:.0f} bytes/lock, redis-py Lock {plain:.0f} bytes/lock")
    return [Row("lock memory per held lock", "redis-py asyncio Lock", "bytes/key", coord, plain)]


BENCHMARKS = (
    Benchmark("lock.acquire_release", bench_acquire_release),
    Benchmark("lock.memory", bench_memory),
)
