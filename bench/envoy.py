"""Envoy's rate limit service: ShouldRateLimit with two descriptors, as Envoy sends it.

``envoy.should_rate_limit``: one request of two descriptors (a caller and a route, fixed windows of
one second, loose enough that every request is allowed) decided atomically by one script, on a Coord
started with a config file (COORD_ENVOY_RATELIMIT_CONFIG). Baselines, in the same run at c=64:

- the same check through Coord's own ``RateLimitService.Check``: two fixed-window descriptors of one
  scope, all-or-nothing, on the same server;
- redis-py asyncio running envoyproxy/ratelimit's Redis algorithm: per descriptor ``INCRBY key
  hits`` and ``EXPIRE key <unit>`` in one pipeline (no MULTI), under a key with the window's start,
  what the reference server does per request (it decides nothing atomically: a denied request still
  counts on its other descriptors).

Besides calls per second it reports the Redis CPU per request of each side.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2 as descriptor_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf.duration_pb2 import Duration

from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

from ._harness import Benchmark, Env, Row, Side, compare, redis_cpu_rows

CALLERS = 1000  # distinct callers the requests cycle through
ROUTES = 10
LIMIT = 1_000_000  # per second: never reached, so every side does the same (allowing) work
DOMAIN = "bench"
CONFIG = f"""\
domain: {DOMAIN}
descriptors:
  - key: caller
    rate_limit:
      unit: second
      requests_per_unit: {LIMIT}
  - key: route
    rate_limit:
      unit: second
      requests_per_unit: {LIMIT}
"""


def _pairs() -> list[tuple[str, str]]:
    return [(f"c{i:05d}", f"/api/r{i % ROUTES}") for i in range(CALLERS)]


def _rls_request(caller: str, route: str) -> rls_pb2.RateLimitRequest:
    entry = descriptor_pb2.RateLimitDescriptor.Entry
    return rls_pb2.RateLimitRequest(
        domain=DOMAIN,
        descriptors=[
            descriptor_pb2.RateLimitDescriptor(entries=[entry(key="caller", value=caller)]),
            descriptor_pb2.RateLimitDescriptor(entries=[entry(key="route", value=route)]),
        ],
    )


def _check_request(caller: str, route: str) -> ratelimit_pb2.CheckRequest:
    rule = ratelimit_pb2.Rule(
        algorithm=ratelimit_pb2.ALGORITHM_FIXED_WINDOW, limit=LIMIT, period=Duration(seconds=1)
    )
    return ratelimit_pb2.CheckRequest(
        scope=DOMAIN,  # one scope: both descriptors in one atomic script, as the domain does
        descriptors=[
            ratelimit_pb2.Descriptor(key=f"caller_{caller}", rule=rule),
            ratelimit_pb2.Descriptor(key=f"route_{route}", rule=rule),
        ],
    )


async def bench_should_rate_limit(env: Env) -> list[Row]:
    if env.spawn_coord is None:
        raise RuntimeError("this run cannot start a Coord with an Envoy rate limit config")
    folder = Path(tempfile.mkdtemp(prefix="coord-bench-envoy-"))
    try:
        (folder / "bench.yaml").write_text(CONFIG)
        pid, _, channel = await env.spawn_coord(
            "envoy", env={"COORD_ENVOY_RATELIMIT_CONFIG": str(folder / "bench.yaml")}
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # read once, at start
    pairs = _pairs()
    rls = rls_pb2_grpc.RateLimitServiceStub(channel)
    requests = [_rls_request(c, r) for c, r in pairs]
    first = await rls.ShouldRateLimit(requests[0])
    if first.overall_code != rls_pb2.RateLimitResponse.OK or not first.statuses[0].HasField("current_limit"):
        raise RuntimeError(f"the Envoy rate limit config is not in force: {first}")

    async def should(i: int) -> None:
        await rls.ShouldRateLimit(requests[i % CALLERS])

    coord = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
    checks = [_check_request(c, r) for c, r in pairs]

    async def check(i: int) -> None:
        await coord.Check(checks[i % CALLERS])

    redis = env.redis
    names = [(f"ratelimit_{DOMAIN}_caller_{c}_", f"ratelimit_{DOMAIN}_route_{r}_") for c, r in pairs]

    async def reference(i: int) -> None:
        # envoyproxy/ratelimit's fixed window: the key ends with the window's start (its own clock).
        window = str(int(time.time()))
        caller, route = names[i % CALLERS]
        pipe = redis.pipeline(transaction=False)
        pipe.incrby(caller + window, 1).expire(caller + window, 1)
        pipe.incrby(route + window, 1).expire(route + window, 1)
        await pipe.execute()

    rows = await compare(
        env,
        "envoy.ShouldRateLimit (2 descriptors)",
        Side("Coord ShouldRateLimit", should, pid, env.redis_pid),
        [
            Side("Coord RateLimitService.Check (2 descriptors, one scope)", check, pid, env.redis_pid),
            Side(
                "redis-py INCRBY+EXPIRE pipeline (envoyproxy/ratelimit's)",
                reference,
                env.redis_pid,
                env.redis_pid,
            ),
        ],
        levels=(64,),
    )
    return rows + redis_cpu_rows(rows, "envoy.ShouldRateLimit Redis CPU per request", "µs/request")


BENCHMARKS = (Benchmark("envoy.should_rate_limit", bench_should_rate_limit),)
