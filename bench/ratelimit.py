"""RateLimit: one- and three-rule Checks, unary and streamed, against what a user would do instead.

``ratelimit.check`` and ``ratelimit.stream``: one GCRA descriptor per Check. Baselines, all in the
same run:
- redis-py asyncio running Coord's own check.lua (EVALSHA with the very keys and arguments Coord
  sends): the same atomic decision without the gRPC hop. The goal is Coord's best API at 1.0x of it
  at concurrency 64.
- the ``limits`` library's asyncio Redis strategies (moving window, sliding window counter and fixed
  window, on redis-py): what a Python service would embed instead.
- the gRPC echo floor, and (for the stream) Coord's own unary Check.

``ratelimit.batched``: the same checks through the asyncio client's ``limit()``, which sends the
checks its concurrent callers make as batches on one CheckBatchStream: Coord's best API for many
checks at once, against redis-py running check.lua at the same concurrency (the issue's goal: at
least 1.0x at 64), and against the same client sending unary CheckBatch calls.

``ratelimit.three_rules``: three descriptors of one scope decided all-or-nothing in one Check
(sliding window counters, 100/s, 2,000/min and 50,000/h on three keys of one caller), against
``limits`` hitting the same three rules one by one (moving window; sliding window counter) and
against redis-py running check.lua with the same three descriptors. Besides calls per second it
reports the Redis CPU per check (the redis-server process's CPU time over the round, divided by the
checks), Coord's included, closed-loop and at one paced rate, and Redis's own command time per
check (``INFO commandstats``: the time spent executing the scripts, without the network work whose
cost per call depends on each side's speed). The goal is that Coord's multi-rule check costs Redis
less than ``limits`` doing the rules one by one.

Plus Redis memory per active rate-limit key: Coord's GCRA state against ``limits``' fixed and moving
windows, each over ``plan.memory_keys`` (10,000; 2,000 with ``--quick``) keys that have taken one unit.
"""

from __future__ import annotations

import asyncio
import statistics

from google.protobuf.duration_pb2 import Duration
from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc
from coord_client import AsyncClient
from coord_client.ratelimit import Limit
from coord_server.ratelimit.keys import RateLimitKeys
from coord_server.ratelimit.rules import Algorithm, make_rule
from coord_server.redis import ScriptSet

from ._harness import Benchmark, Env, Row, Side, compare, paced, progress, redis_cpu_rows
from ._stream import Multiplexed
from .floor import echo_side

KEYS = 1000  # distinct keys the checks cycle through: every check is allowed at these rates
LIMIT = 1000  # units per second per key
BATCH = 100
TENANT = "default"

RULE = ratelimit_pb2.Rule(
    algorithm=ratelimit_pb2.ALGORITHM_TOKEN_BUCKET, limit=LIMIT, period=Duration(seconds=1)
)
# The three rules of one caller: (suffix of the descriptor key, limit, period in seconds). Loose
# enough that every check of the run is allowed on every side.
THREE = (("s", 100, 1), ("m", 2_000, 60), ("h", 50_000, 3600))
PACED_RATE = 400  # checks per second every side sustains on 2 shared cores
PACED_RATES = (PACED_RATE, 1500)
PACED_WORKERS = 16
THREE_ITEMS: tuple[RateLimitItem, ...] = (
    RateLimitItemPerSecond(100),
    RateLimitItemPerMinute(2_000),
    RateLimitItemPerHour(50_000),
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

        return Side("Coord Check", coord, self.env.coord_pid, self.env.redis_pid)

    def lua(self) -> Side:
        redis, sha, state, args = self.env.redis, self.script.sha, self.state_keys, self.args

        async def op(i: int) -> None:
            await redis.evalsha(sha, 1, state[i % KEYS], *args)

        return Side("redis-py EVALSHA check.lua", op, self.env.redis_pid, self.env.redis_pid)

    def limits(self, name: str, strategy: RateLimiter) -> Side:
        # The strategies would read each other's keys (a list and a counter) under one name.
        item = self.item
        keys = [f"{type(strategy).__name__}:{k}" for k in self.keys]

        async def op(i: int) -> None:
            await strategy.hit(item, keys[i % KEYS])

        return Side(name, op, self.env.redis_pid, self.env.redis_pid)


async def bench_check(env: Env) -> list[Row]:
    s = _Sides(env)
    await s.prepare()
    storage = _limits_storage(env)
    moving = MovingWindowRateLimiter(storage)
    sliding = SlidingWindowCounterRateLimiter(storage)
    fixed = FixedWindowRateLimiter(storage)
    for strategy in (moving, sliding, fixed):
        await strategy.hit(s.item, f"probe:{type(strategy).__name__}")  # loads the library's scripts
    return await compare(
        env,
        "ratelimit.Check (GCRA, 1 descriptor)",
        s.unary(),
        [
            s.lua(),
            s.limits("limits moving window (redis-py)", moving),
            s.limits("limits sliding window counter (redis-py)", sliding),
            s.limits("limits fixed window (redis-py)", fixed),
            echo_side(env.floor, s.requests[0].SerializeToString(), env.floor_pid),
        ],
    )


class _ThreeRules:
    """One caller's three rules through Coord, through check.lua and through ``limits``."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.stub = ratelimit_pb2_grpc.RateLimitServiceStub(env.coord)
        self.callers = _keys(KEYS, "three:")
        self.requests = [self._request(c) for c in self.callers]
        coord_keys = RateLimitKeys(TENANT)
        self.script = ScriptSet("coord_server.ratelimit")["check"]
        self.calls: list[list[str | int]] = []
        args: list[int] = [0]  # flags: all-or-nothing, not a dry run
        for _, limit, seconds in THREE:
            rule = make_rule(
                "", algorithm=int(Algorithm.SLIDING_WINDOW), limit=limit, period_ms=seconds * 1000
            )
            args += [int(rule.algorithm), rule.limit, rule.period_us, rule.burst, 1, 0]
        for caller in self.callers:
            keys = [
                coord_keys.state(caller, f"{caller}:{suffix}", Algorithm.SLIDING_WINDOW)
                for suffix, *_ in THREE
            ]
            self.calls.append([*keys, *args])

    @staticmethod
    def _request(caller: str) -> ratelimit_pb2.CheckRequest:
        descriptors = [
            ratelimit_pb2.Descriptor(
                key=f"{caller}:{suffix}",
                rule=ratelimit_pb2.Rule(
                    algorithm=ratelimit_pb2.ALGORITHM_SLIDING_WINDOW,
                    limit=limit,
                    period=Duration(seconds=seconds),
                ),
            )
            for suffix, limit, seconds in THREE
        ]
        return ratelimit_pb2.CheckRequest(
            descriptors=descriptors, scope=caller, mode=ratelimit_pb2.MODE_ALL_OR_NOTHING
        )

    async def prepare(self) -> None:
        await self.env.redis.script_load(self.script.source)
        reply = await self.stub.Check(self.requests[0])
        if not reply.allowed or len(reply.statuses) != len(THREE):
            raise RuntimeError("Coord denied the first three-rule check of a fresh caller")

    def coord(self) -> Side:
        stub, requests = self.stub, self.requests

        async def op(i: int) -> None:
            await stub.Check(requests[i % KEYS])

        return Side("Coord Check", op, self.env.coord_pid, self.env.redis_pid)

    def batched(self, client: AsyncClient) -> Side:
        """The same three rules through the asyncio client, which batches concurrent checks."""
        callers = self.callers
        limits = [
            [
                Limit(f"{c}:{suffix}", rate=f"{limit}/{seconds}s", algorithm="sliding_window")
                for suffix, limit, seconds in THREE
            ]
            for c in callers
        ]

        async def op(i: int) -> None:
            if not await client.ratelimit.check(*limits[i % KEYS], scope=callers[i % KEYS]):
                raise RuntimeError("Coord denied a three-rule check the benchmark's rates always allow")

        return Side("Coord AsyncClient.check (batched)", op, self.env.coord_pid, self.env.redis_pid)

    def lua(self) -> Side:
        redis, sha, calls = self.env.redis, self.script.sha, self.calls

        async def op(i: int) -> None:
            await redis.evalsha(sha, len(THREE), *calls[i % KEYS])

        return Side("redis-py EVALSHA check.lua", op, self.env.redis_pid, self.env.redis_pid)

    def limits(self, name: str, strategy: RateLimiter) -> Side:
        # What a caller of the library writes: one hit per rule, stopping at the first denial (the
        # earlier rules have consumed by then: the library has no all-or-nothing).
        prefix = type(strategy).__name__
        keys = [[f"{prefix}:{c}:{suffix}" for suffix, *_ in THREE] for c in self.callers]

        async def op(i: int) -> None:
            for item, key in zip(THREE_ITEMS, keys[i % KEYS], strict=True):
                if not await strategy.hit(item, key):
                    break

        return Side(name, op, self.env.redis_pid, self.env.redis_pid)


async def bench_three_rules(env: Env) -> list[Row]:
    s = _ThreeRules(env)
    await s.prepare()
    storage = _limits_storage(env)
    moving = MovingWindowRateLimiter(storage)
    sliding = SlidingWindowCounterRateLimiter(storage)
    for strategy in (moving, sliding):
        await strategy.hit(THREE_ITEMS[0], f"probe:{type(strategy).__name__}")  # loads the library's scripts
    sides = [
        s.coord(),
        s.lua(),
        s.limits("limits moving window x3 (redis-py)", moving),
        s.limits("limits sliding window counter x3 (redis-py)", sliding),
    ]
    rows = await compare(env, "ratelimit.Check (3 rules, all-or-nothing)", sides[0], sides[1:])
    cpu = redis_cpu_rows(rows, "ratelimit 3 rules: Redis CPU per check", "µs/check")
    # Coord's best API for many callers: their checks travel as CheckBatch calls, their scripts as
    # pipelines, which is also what lets Redis spend less per check.
    async with AsyncClient(env.coord_target) as client:
        batched = await compare(
            env,
            "ratelimit.Check (3 rules) via AsyncClient (concurrent checks batched)",
            s.batched(client),
            sides[1:],
            levels=(max(env.plan.concurrency),),
        )
    rows += batched
    cpu += redis_cpu_rows(batched, "ratelimit 3 rules, batched client: Redis CPU per check", "µs/check")
    # Redis costs more per call when calls come further apart (a colder cache, a wake-up per call),
    # and the closed-loop sides run at very different speeds: the same sides at equal rates as well,
    # a light one and one near what unary Coord sustains here.
    for rate in PACED_RATES:
        even = [paced(side, rate) for side in sides]
        equal = await compare(
            env, f"ratelimit.Check (3 rules) at {rate}/s", even[0], even[1:], levels=(PACED_WORKERS,)
        )
        cpu += redis_cpu_rows(equal, f"ratelimit 3 rules at {rate}/s: Redis CPU per check", "µs/check")
    cpu += await _command_time_rows(env, [paced(side, PACED_RATE) for side in sides])
    for row in cpu:
        progress(
            f"3 rules c={row.concurrency}: Redis µs/check Coord {row.coord:.1f}, "
            f"{row.baseline_name} {row.baseline:.1f}"
        )
    return rows + cpu


async def _command_time(env: Env, side: Side) -> float:
    """Redis's own time executing the side's scripts, per check: ``INFO commandstats`` usec.

    Unlike the process CPU above, this leaves out the network and event-loop work whose cost per call
    depends on how many calls arrive together, and counts only the time Redis spent running the
    commands. All sides here call only scripts (EVALSHA, EVAL on a miss). ``side`` is paced: a
    script runs slower when calls come further apart (colder caches), so every side runs at one rate.
    """
    await env.redis.config_resetstat()
    per_worker = max(25, int(PACED_RATE * env.plan.duration * 2) // PACED_WORKERS)

    async def worker(w: int) -> None:
        for i in range(per_worker):
            await side.op(w * per_worker + i)

    await asyncio.gather(*(worker(w) for w in range(PACED_WORKERS)))
    stats = await env.redis.info("commandstats")
    usec = sum(int(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    return usec / (per_worker * PACED_WORKERS)


async def _command_time_rows(env: Env, sides: list[Side]) -> list[Row]:
    operation = f"ratelimit 3 rules at {PACED_RATE}/s: Redis command time per check (INFO commandstats)"
    times: dict[str, list[float]] = {side.name: [] for side in sides}
    for i in range(env.plan.rounds):
        for side in sides if i % 2 == 0 else list(reversed(sides)):
            times[side.name].append(await _command_time(env, side))
    mine = statistics.median(times[sides[0].name])
    rows = []
    for side in sides[1:]:
        theirs = statistics.median(times[side.name])
        progress(f"3 rules: Redis command µs/check Coord {mine:.1f}, {side.name} {theirs:.1f}")
        rows.append(Row(operation, side.name, "µs/check", mine, theirs, PACED_WORKERS))
    return rows


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
    """``used_memory`` growth per key, over ``plan.memory_keys`` keys that have each taken one unit."""
    count = env.plan.memory_keys
    keys = _keys(count, "mem:")
    stub = ratelimit_pb2_grpc.RateLimitServiceStub(env.coord)
    # 10 per hour: one unit keeps each key's state alive for minutes (GCRA: 6 min), on every side.
    rule = ratelimit_pb2.Rule(
        algorithm=ratelimit_pb2.ALGORITHM_TOKEN_BUCKET, limit=10, period=Duration(seconds=3600)
    )
    await env.redis.flushall()
    before = await _used_memory(env)
    for i in range(0, count, BATCH):
        descriptors = [ratelimit_pb2.Descriptor(key=k, rule=rule) for k in keys[i : i + BATCH]]
        reply = await stub.Check(
            ratelimit_pb2.CheckRequest(descriptors=descriptors, mode=ratelimit_pb2.MODE_INDEPENDENT)
        )
        if not reply.allowed:
            raise RuntimeError("Coord denied a fresh key")
    coord = (await _used_memory(env) - before) / count
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
        other = (await _used_memory(env) - before) / count
        progress(f"ratelimit memory: Coord {coord:.0f} bytes/key, {name} {other:.0f} bytes/key")
        rows.append(Row("ratelimit memory per active key (10/h)", name, "bytes/key", coord, other))
    await env.redis.flushall()
    return rows


async def bench_batched(env: Env) -> list[Row]:
    """What an asyncio service gets from ``await client.limit(...)`` with K requests in flight.

    The client sends the checks its coroutines make together as one batch (each check decided on
    its own, exactly as by Check), as messages of one CheckBatchStream, so K concurrent callers cost
    the server one stream message, not K calls. A second client sends the same batches as unary
    CheckBatch calls (what it does with a server that has no CheckBatchStream): the stream's gain.
    """
    s = _Sides(env)
    await s.prepare()
    async with AsyncClient(env.coord_target) as client, AsyncClient(env.coord_target) as unary:
        batcher = unary.ratelimit._batcher
        assert batcher is not None
        batcher._stream_supported = False
        keys, rate = s.keys, f"{LIMIT}/s"  # RULE: a token bucket of LIMIT per second

        def side(name: str, through: AsyncClient) -> Side:
            async def op(i: int) -> None:
                if not await through.limit(keys[i % KEYS], rate=rate):
                    raise RuntimeError("Coord denied a check the benchmark's rates always allow")

            return Side(name, op, env.coord_pid, env.redis_pid)

        return await compare(
            env,
            "ratelimit checks via AsyncClient.limit (concurrent checks batched)",
            side("Coord AsyncClient.limit", client),
            [s.lua(), s.unary(), side("Coord AsyncClient.limit, unary CheckBatch calls", unary)],
        )


BENCHMARKS = (
    Benchmark("ratelimit.check", bench_check),
    Benchmark("ratelimit.stream", bench_check_stream),
    Benchmark("ratelimit.batched", bench_batched),
    Benchmark("ratelimit.three_rules", bench_three_rules),
    Benchmark("ratelimit.memory", bench_memory),
)
