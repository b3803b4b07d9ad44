"""A caller that writes on a bidirectional stream (GetStream, CheckStream, CheckBatchStream) without
reading its answers gets at most a bounded number of them decided: the server stops reading its
requests while those answers wait to be sent, instead of queueing an answer for every request.

Measured without clocks: the requests ``answer_each`` has read and the answers it has yielded, and,
end to end, the scripts Redis ran for a server process (one per GetStream request decided) and that
process's resident memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import psutil
import redis

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord_server._grpc import STREAM_IN_FLIGHT, answer_each

from ..conftest import RedisProcess, start_server_process


def test_answer_each_reads_no_further_while_its_answers_are_not_taken() -> None:
    in_flight, total = 8, 1000

    async def main() -> tuple[int, int, list[int]]:
        read = 0

        async def requests() -> AsyncIterator[int]:
            nonlocal read
            for number in range(total):
                read += 1
                yield number

        async def handle(number: int) -> int:
            return number * 2

        answers = answer_each(requests(), handle, "test", in_flight=in_flight)
        first = await anext(answers)
        # The caller does not take the next answer (gRPC has not sent this one): let every task run
        # as far as it can. The loop turns are counted, not timed.
        for _ in range(10 * total):
            await asyncio.sleep(0)
        read_while_stalled = read
        answered = [first, *[answer async for answer in answers]]
        return read_while_stalled, read, sorted(r for _, r, _ in answered if r is not None)

    read_while_stalled, read, doubled = asyncio.run(main())
    # The slots: the answer being sent and the ones decided behind it; one more request was read and
    # waits for a slot.
    assert read_while_stalled == in_flight + 1
    assert read == total and doubled == [2 * n for n in range(total)]


def _scripts_run(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))


def _settled(read: Callable[[], int], same_for: int = 15) -> int:
    """``read()`` once it has given the same value ``same_for`` times in a row, polled every 0.1 s."""
    last, same = read(), 0
    end = time.monotonic() + 60
    while same < same_for:
        assert time.monotonic() < end, "timed out waiting for the server to settle"
        time.sleep(0.1)
        now = read()
        last, same = now, same + 1 if now == last else 0
    return last


def test_a_caller_that_never_reads_gets_a_bounded_number_of_answers(
    redis_factory: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    backing = redis_factory()
    proc, target = start_server_process(backing.url, tmp_path / "server.log")
    value_size, requests = 32 * 1024, 3000  # unbounded, the answers would hold ~94 MiB
    try:
        server = psutil.Process(proc.pid)
        with backing.client() as r:

            async def write_and_never_read() -> tuple[int, int]:
                async with grpc.aio.insecure_channel(target) as channel:
                    stub = cache_pb2_grpc.CacheServiceStub(channel)
                    await stub.Set(pb.SetRequest(key="k", value=b"v" * value_size))
                    await stub.Get(pb.GetRequest(key="k"))  # the get script is loaded
                    before = _scripts_run(r)
                    rss_before = server.memory_info().rss
                    call = stub.GetStream()

                    async def write() -> None:
                        for i in range(requests):
                            await call.write(pb.GetStreamRequest(request_id=i, get=pb.GetRequest(key="k")))

                    writer = asyncio.create_task(write())
                    decided = await asyncio.to_thread(_settled, lambda: _scripts_run(r) - before)
                    grown = server.memory_info().rss - rss_before
                    writer.cancel()
                    call.cancel()
                    return decided, grown

            decided, grown = asyncio.run(write_and_never_read())
    finally:
        proc.terminate()
        proc.wait(30)
    # Decided: the slots of the stream, plus what the HTTP/2 windows and socket buffers between the
    # two hold of the answers sent (a few MiB); far from all of them.
    assert decided <= STREAM_IN_FLIGHT + (16 << 20) // value_size < requests
    assert grown < requests * value_size // 3
