"""RateLimit: one GCRA descriptor per Check, unary and streamed, against what a user would do instead.

Baselines, all in the same run:
- redis-py asyncio running Coord's own check.lua (EVALSHA with the very keys and arguments Coord
  sends): the same atomic decision without the gRPC hop. The goal is Coord's best API at 1.0x of it
  at concurrency 64.
- the ``limits`` library's asyncio Redis strategies (moving window and fixed window, on redis-py):
  what a Python service would embed instead.
- the gRPC echo floor, and (for the stream) Coord's own unary Check.

Plus Redis memory per active rate-limit key: Coord's GCRA state against ``limits``' fixed and moving
windows, each over 10,000 keys that have taken one unit.
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from limits import RateLimitItemPerHour, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc
from coord_server.ratelimit.keys import RateLimitKeys
from coord_server.ratelimit.rules import Algorithm, make_rule
from coord_server.scripts import ScriptSet

from ._harness import Benchmark, Env, Row, Side, compare, progress
from ._stream import Multiplexed
from .floor import echo_side

KEYS = 1000  # distinct keys the checks cycle through: every check is allowed at these rates
LIMIT = 1000  # units per second per key
MEMORY_KEYS = 10_000
BATCH = 100
TENANT = "default"

RULE = ratelimit_pb2.Rule(
    algorithm=ratelimit_pb2.ALGORITHM_TOKEN_BUCKET, limit=LIMIT, period=Duration(seconds=1)
)


def _keys(count: int, prefix: str = "bench:") -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(count)]


def _check(key: str) -> ratelimit_pb2.CheckRequest:
    return ratelimit_pb2.CheckRequest(descriptors=[ratelimit_pb2.Descriptor(key=key, rule=RULE)])


def _script_args() -> list[int]:
    """check.lua's ARGV for one token-bucket descriptor of cost 1, as Coord's store builds it."""
    rule = make_rule("", algorithm=int(Algorithm.TOKEN_BUCKET), limit=LIMIT, period_ms=1000)
    return [0, int(rule.algorithm), rule.limit, rule.period_us, rule.burst, 1, rule.interval_us]


def _limits_storage(env: Env) -> RedisStorage:
    return RedisStorage(env.redis_url.replace("redis://", "async+redis://"), implementation="redispy")


class _Sides:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.stub = ratelimit_pb2_grpc.RateLimitServiceStub(env.coord)
        self.keys = _keys(KEYS)
        self.requests = [_check(k) for k in self.keys]
        coord_keys = RateLimitKeys(TENANT)
        self.state_keys = [coord_keys.state("", k, Algorithm.TOKEN_BUCKET) for k in self.keys]
        self.script = ScriptSet("coord_server.ratelimit")["check"]
        self.args = _script_args()
        self.item = RateLimitItemPerSecond(LIMIT)

    async def prepare(self) -> None:
        await self.env.redis.script_load(self.script.source)
        reply = await self.stub.Check(self.requests[0])
        if not reply.allowed:
            raise RuntimeError("Coord denied the first check of a fresh key")

    def unary(self) -> Side:
        stub, requests = self.stub, self.requests

        async def coord(i: int) -> None:
            await stub.Check(requests[i % KEYS])

        return Side("Coord Check", coord, self.env.coord_pid)

    def lua(self) -> Side:
        redis, sha, state, args = self.env.redis, self.script.sha, self.state_keys, self.args

        async def op(i: int) -> None:
            await redis.evalsha(sha, 1, state[i % KEYS], *args)

        return Side("redis-py EVALSHA check.lua", op, self.env.redis_pid)

    def limits(self, name: str, strategy: MovingWindowRateLimiter | FixedWindowRateLimiter) -> Side:
        # The two strategies would read each other's keys (a list and a counter) under one name.
        item = self.item
        keys = [f"{type(strategy).__name__}:{k}" for k in self.keys]

        async def op(i: int) -> None:
            await strategy.hit(item, keys[i % KEYS])

        return Side(name, op, self.env.redis_pid)


async def bench_check(env: Env) -> list[Row]:
    s = _Sides(env)
    await s.prepare()
    storage = _limits_storage(env)
    moving = MovingWindowRateLimiter(storage)
    fixed = FixedWindowRateLimiter(storage)
    await moving.hit(s.item, "probe")
    return await compare(
        env,
        "ratelimit.Check (GCRA, 1 descriptor)",
        s.unary(),
        [
            s.lua(),
            s.limits("limits moving window (redis-py)", moving),
            s.limits("limits fixed window (redis-py)", fixed),
            echo_side(env.floor, s.requests[0].SerializeToString(), env.floor_pid),
        ],
    )


async def bench_check_stream(env: Env) -> list[Row]:
    s = _Sides(env)
    await s.prepare()
    async with Multiplexed(s.stub.CheckStream, ratelimit_pb2.CheckStreamRequest) as stream:
        requests = s.requests

        async def coord(i: int) -> None:
            await stream.call(check=requests[i % KEYS])

        return await compare(
            env,
            "ratelimit.CheckStream (GCRA, 1 descriptor)",
            Side("Coord CheckStream", coord, env.coord_pid),
            [s.lua(), s.unary()],
        )


async def _used_memory(env: Env) -> int:
    return int((await env.redis.info("memory"))["used_memory"])


async def bench_memory(env: Env) -> list[Row]:
    """``used_memory`` growth per key, over 10,000 keys that have each taken one unit."""
    keys = _keys(MEMORY_KEYS, "mem:")
    stub = ratelimit_pb2_grpc.RateLimitServiceStub(env.coord)
    # 10 per hour: one unit keeps each key's state alive for minutes (GCRA: 6 min), on every side.
    rule = ratelimit_pb2.Rule(
        algorithm=ratelimit_pb2.ALGORITHM_TOKEN_BUCKET, limit=10, period=Duration(seconds=3600)
    )
    await env.redis.flushall()
    before = await _used_memory(env)
    for i in range(0, MEMORY_KEYS, BATCH):
        descriptors = [ratelimit_pb2.Descriptor(key=k, rule=rule) for k in keys[i : i + BATCH]]
        reply = await stub.Check(
            ratelimit_pb2.CheckRequest(descriptors=descriptors, mode=ratelimit_pb2.MODE_INDEPENDENT)
        )
        if not reply.allowed:
            raise RuntimeError("Coord denied a fresh key")
    coord = (await _used_memory(env) - before) / MEMORY_KEYS
    rows = []
    storage = _limits_storage(env)
    item = RateLimitItemPerHour(10)
    for name, strategy in (
        ("limits fixed window (redis-py)", FixedWindowRateLimiter(storage)),
        ("limits moving window (redis-py)", MovingWindowRateLimiter(storage)),
    ):
        await env.redis.flushall()
        await strategy.hit(item, "warm")  # loads the library's scripts before measuring
        before = await _used_memory(env)
        for key in keys:
            await strategy.hit(item, key)
        other = (await _used_memory(env) - before) / MEMORY_KEYS
        progress(f"ratelimit memory: Coord {coord:.0f} bytes/key, {name} {other:.0f} bytes/key")
        rows.append(Row("ratelimit memory per active key (10/h)", name, "bytes/key", coord, other))
    await env.redis.flushall()
    return rows


BENCHMARKS = (
    Benchmark("ratelimit.check", bench_check),
    Benchmark("ratelimit.stream", bench_check_stream),
    Benchmark("ratelimit.memory", bench_memory),
)
