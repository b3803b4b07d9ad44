"""Another client's writes, in a process of its own: ``python -m bench._writer coord|redis TARGET
PREFIX VALUE_BYTES TTL_S WRITERS``.

A benchmark that measures reads while another client writes (bench.near_cache) hands its writes to
this process: each line on stdin is the number of a key (``PREFIX`` and the number as four digits)
to write once with a value of ``VALUE_BYTES`` bytes, and each write done is answered
with one byte on stdout (``.``; ``!`` when it failed, after which the process ends). ``WRITERS``
tasks write at once. The writes go through Coord's generated Python stub (``coord``: ``Set`` over
gRPC, a channel of its own) or redis-py (``redis``: ``SET PX``), so that the other client costs the
measured process nothing but the lines it hands over, as it would in production: a program whose
reads are measured does not share its event loop with the writers of other programs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

import grpc
import redis.asyncio as aioredis
from google.protobuf.duration_pb2 import Duration

from coord.cache.v1 import cache_pb2, cache_pb2_grpc

from ._harness import new_event_loop


async def _serve(write: Callable[[str], Awaitable[object]], prefix: str, writers: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def writer() -> None:
        while (key := await queue.get()) is not None:
            try:
                await write(key)
            except Exception as exc:
                os.write(1, b"!")
                print(f"bench writer: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                os._exit(1)
            os.write(1, b".")

    tasks = [asyncio.create_task(writer()) for _ in range(writers)]
    while line := await reader.readline():
        queue.put_nowait(f"{prefix}{int(line):04d}")
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)


async def _main(argv: list[str]) -> None:
    kind, target, prefix, value_bytes, ttl_s, writers = argv
    value = b"v" * int(value_bytes)
    ttl = int(ttl_s)
    if kind == "coord":
        # The generated stub, the thinnest client there is: on a small machine the other client's
        # own CPU would otherwise be taken from the server it writes to.
        async with grpc.aio.insecure_channel(target) as channel:
            stub = cache_pb2_grpc.CacheServiceStub(channel)
            duration = Duration(seconds=ttl)

            def write(key: str) -> Awaitable[object]:
                return stub.Set(cache_pb2.SetRequest(key=key, value=value, ttl=duration), timeout=10)

            await _serve(write, prefix, int(writers))
    elif kind == "redis":
        async with aioredis.Redis.from_url(target) as redis:
            await _serve(lambda key: redis.set(key, value, px=ttl * 1000), prefix, int(writers))
    else:
        raise SystemExit(f"bench writer: unknown kind {kind!r} (coord or redis)")


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_main(sys.argv[1:]))
