"""Session: Validate of a live session token, against what a user would do instead with redis-py.

``session.validate`` (no touch). Baselines, all in the same run:
- redis-py asyncio running Coord's own validate.lua (EVALSHA with the very keys and arguments Coord
  sends for a Validate without touch): the same atomic read without the gRPC hop.
- redis-py asyncio GET of a session stored the common way: a JSON document with a TTL under
  ``session:<sha256(token)>`` (what Flask-Session or a hand-written store does). It checks no
  absolute expiry, rotation grace or revocation; Coord's script does.

``session.validate_touch``: Validate with touch, returning every attribute, against the usual
sliding-session pattern in redis-py: a hash per session read with ``HGETALL`` and its idle timeout
pushed back with ``EXPIRE``, both in one (MULTI/EXEC) pipeline, on every request. Coord's touch is
throttled (it rewrites Redis only when the last touch is older than min(touch interval, idle / 20),
60 s by default), so the main server's touches write nothing during the run; a second Coord server
with a 1 ms touch interval shows the cost when every touch writes. validate.lua with touch is the
third baseline.

Plus Redis memory per session (a subject, two attributes) against that JSON document.
"""

from __future__ import annotations

import json

from coord.session.v1 import session_pb2, session_pb2_grpc
from coord_server.redis import ScriptSet
from coord_server.session.keys import SessionKeys
from coord_server.session.tokens import parse_token

from ._harness import Benchmark, Env, Row, Side, compare, progress

SESSIONS = 1000
TENANT = "default"
ATTRIBUTES = {"role": b"admin", "locale": b"en-GB"}
TOUCH_INTERVAL_MS = 60_000  # the server's default touch throttle
TOMBSTONE_MS = 300_000  # the server's default session tombstone TTL
IDLE_S = 1800  # the idle timeout of the plain hash sessions (Coord's default idle timeout)


def _create(i: int) -> session_pb2.CreateRequest:
    return session_pb2.CreateRequest(subject=f"user:{i:06d}", attributes=ATTRIBUTES)


def _document(i: int) -> str:
    attrs = {k: v.decode() for k, v in ATTRIBUTES.items()}
    return json.dumps({"subject": f"user:{i:06d}", "created": 1_700_000_000_000, "attributes": attrs})


async def _create_all(stub: session_pb2_grpc.SessionServiceStub, count: int) -> list[str]:
    return [(await stub.Create(_create(i))).token for i in range(count)]


async def bench_validate(env: Env) -> list[Row]:
    stub = session_pb2_grpc.SessionServiceStub(env.coord)
    tokens = await _create_all(stub, SESSIONS)
    requests = [session_pb2.ValidateRequest(token=t) for t in tokens]
    keys = SessionKeys(TENANT)
    parsed = [parse_token(t) for t in tokens]
    script_calls = []
    for p in parsed:
        assert p is not None
        script_calls.append(
            (keys.bucket(p.bucket), (p.session_id, p.digest, 0, TOUCH_INTERVAL_MS, TOMBSTONE_MS, 0))
        )
    script = ScriptSet("coord_server.session")["validate"]
    redis = env.redis
    await redis.script_load(script.source)
    plain_keys = [f"session:{p.digest}" for p in parsed if p is not None]
    pipe = redis.pipeline(transaction=False)
    for i, key in enumerate(plain_keys):
        pipe.set(key, _document(i), px=1_800_000)
    await pipe.execute()
    probe = await stub.Validate(requests[0])
    if not probe.HasField("session"):
        raise RuntimeError("Coord did not validate a fresh session")

    async def coord(i: int) -> None:
        await stub.Validate(requests[i % SESSIONS])

    async def lua(i: int) -> None:
        bucket_keys, args = script_calls[i % SESSIONS]
        await redis.evalsha(script.sha, 3, *bucket_keys, *args)

    async def plain(i: int) -> None:
        json.loads(await redis.get(plain_keys[i % SESSIONS]))

    return await compare(
        env,
        "session.Validate (no touch)",
        Side("Coord", coord, env.coord_pid),
        [
            Side("redis-py EVALSHA validate.lua", lua, env.redis_pid),
            Side("redis-py GET JSON session", plain, env.redis_pid),
        ],
    )


async def bench_validate_touch(env: Env) -> list[Row]:
    if env.spawn_coord is None:
        raise RuntimeError("this run cannot start a second Coord server")
    stub = session_pb2_grpc.SessionServiceStub(env.coord)
    tokens = await _create_all(stub, SESSIONS)
    requests = [session_pb2.ValidateRequest(token=t, touch=True, attribute_names=["*"]) for t in tokens]
    pid, _, channel = await env.spawn_coord("session-touch", env={"COORD_SESSION_TOUCH_INTERVAL": "1ms"})
    eager = session_pb2_grpc.SessionServiceStub(channel)
    keys = SessionKeys(TENANT)
    script_calls = []
    plain_keys = []
    for token in tokens:
        p = parse_token(token)
        assert p is not None
        script_calls.append(
            (keys.bucket(p.bucket), (p.session_id, p.digest, 1, TOUCH_INTERVAL_MS, TOMBSTONE_MS, 1))
        )
        plain_keys.append(f"session:{p.digest}")
    script = ScriptSet("coord_server.session")["validate"]
    redis = env.redis
    await redis.script_load(script.source)
    pipe = redis.pipeline(transaction=False)
    for i, key in enumerate(plain_keys):
        fields: dict[str | bytes, str | bytes] = {"subject": f"user:{i:06d}", "created": "1700000000000"}
        fields.update(ATTRIBUTES)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, IDLE_S)
    await pipe.execute()
    probe = await stub.Validate(requests[0])
    if not probe.HasField("session") or dict(probe.session.attributes) != ATTRIBUTES:
        raise RuntimeError("Coord did not validate a fresh session with its attributes")

    async def coord(i: int) -> None:
        await stub.Validate(requests[i % SESSIONS])

    async def coord_eager(i: int) -> None:
        await eager.Validate(requests[i % SESSIONS])

    async def lua(i: int) -> None:
        bucket_keys, args = script_calls[i % SESSIONS]
        await redis.evalsha(script.sha, 3, *bucket_keys, *args)

    async def plain(i: int) -> None:
        key = plain_keys[i % SESSIONS]
        async with redis.pipeline() as pipe:
            pipe.hgetall(key)
            pipe.expire(key, IDLE_S)
            fields, _ = await pipe.execute()
        if not fields:
            raise RuntimeError("a plain hash session vanished")

    return await compare(
        env,
        "session.Validate (touch, all attributes)",
        Side("Coord", coord, env.coord_pid, env.redis_pid),
        [
            Side("redis-py HGETALL + EXPIRE pipeline", plain, env.redis_pid, env.redis_pid),
            Side("redis-py EVALSHA validate.lua (touch)", lua, env.redis_pid, env.redis_pid),
            Side("Coord, touch writes every call", coord_eager, pid, env.redis_pid),
        ],
    )


async def _used_memory(env: Env) -> int:
    return int((await env.redis.info("memory"))["used_memory"])


async def bench_memory(env: Env) -> list[Row]:
    """``used_memory`` growth per session, over ``plan.memory_keys`` sessions of distinct subjects."""
    stub = session_pb2_grpc.SessionServiceStub(env.coord)
    count = env.plan.memory_keys
    await env.redis.flushall()
    before = await _used_memory(env)
    tokens = await _create_all(stub, count)
    coord = (await _used_memory(env) - before) / count
    await env.redis.flushall()
    before = await _used_memory(env)
    pipe = env.redis.pipeline(transaction=False)
    for i, token in enumerate(tokens):
        parsed = parse_token(token)
        assert parsed is not None
        pipe.set(f"session:{parsed.digest}", _document(i), px=1_800_000)
    await pipe.execute()
    plain = (await _used_memory(env) - before) / count
    await env.redis.flushall()
    progress(f"session memory: Coord {coord:.0f} bytes/session, JSON document {plain:.0f} bytes/session")
    return [Row("session memory per session", "redis-py SET JSON session", "bytes/key", coord, plain)]


BENCHMARKS = (
    Benchmark("session.validate", bench_validate),
    Benchmark("session.validate_touch", bench_validate_touch),
    Benchmark("session.memory", bench_memory),
)
