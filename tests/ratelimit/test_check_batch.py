"""CheckBatch: every check of a batch is decided exactly as Check would decide it, on its own; and the
asyncio client sends its concurrent checks through it without any caller noticing."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_status import rpc_status

from coord.ratelimit.v1 import ratelimit_pb2 as pb
from coord.ratelimit.v1 import ratelimit_pb2_grpc
from coord_client import AsyncClient, DeadlineExceeded, InvalidArgument
from coord_client.ratelimit import BATCHES_IN_FLIGHT, _CheckBatcher

from ..conftest import CoordUnderTest, RedisProcess, start_server_process
from .test_check_stream import error_details

RULE = pb.Rule(algorithm=pb.ALGORITHM_TOKEN_BUCKET, limit=3, period=duration_pb2.Duration(seconds=60))


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[ratelimit_pb2_grpc.RateLimitServiceStub]:
    with grpc.insecure_channel(coord.target) as channel:
        yield ratelimit_pb2_grpc.RateLimitServiceStub(channel)


def check(key: str, rule: pb.Rule = RULE, **fields: Any) -> pb.CheckRequest:
    return pb.CheckRequest(descriptors=[pb.Descriptor(key=key, rule=rule)], **fields)


def test_a_batch_decides_like_check(stub: ratelimit_pb2_grpc.RateLimitServiceStub) -> None:
    reply = stub.CheckBatch(pb.CheckBatchRequest(checks=[check("batch:1") for _ in range(5)]), timeout=10)
    assert len(reply.results) == 5
    assert all(r.WhichOneof("result") == "check" for r in reply.results)
    allowed = [r.check for r in reply.results if r.check.allowed]
    denied = [r.check for r in reply.results if not r.check.allowed]
    assert len(allowed) == 3 and len(denied) == 2
    assert sorted(c.remaining for c in allowed) == [0, 1, 2]
    assert all(c.retry_after.ToMilliseconds() > 0 for c in denied)
    assert all(c.ratelimit_header and c.ratelimit_policy_header for c in allowed + denied)
    peek = stub.Check(check("batch:1", dry_run=True))  # the batch consumed from Check's own state
    assert not peek.allowed and peek.remaining == 0


def test_each_check_keeps_its_own_mode_and_errors(stub: ratelimit_pb2_grpc.RateLimitServiceStub) -> None:
    one_left = pb.Rule(algorithm=pb.ALGORITHM_FIXED_WINDOW, limit=1, period=duration_pb2.Duration(seconds=60))
    assert stub.Check(check("aon:b", one_left, scope="aon")).allowed  # b is now used up
    all_or_nothing = pb.CheckRequest(
        scope="aon",
        descriptors=[pb.Descriptor(key="aon:a", rule=RULE), pb.Descriptor(key="aon:b", rule=one_left)],
    )
    reply = stub.CheckBatch(
        pb.CheckBatchRequest(
            checks=[check("ok:1"), check(""), all_or_nothing, check("ok:2", cost=-1), check("ok:3")]
        ),
        timeout=10,
    )
    kinds = [r.WhichOneof("result") for r in reply.results]
    assert kinds == ["check", "error", "check", "error", "check"]
    assert reply.results[0].check.allowed and reply.results[4].check.allowed
    for index, field in ((1, "descriptors[0].key"), (3, "cost")):
        error = reply.results[index].error
        info, fields = error_details(error)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert info.domain == "coord" and info.reason and fields == [field]
    aon = reply.results[2].check
    assert not aon.allowed and not any(s.consumed for s in aon.statuses)
    # all-or-nothing held inside the batch: a was not consumed although it alone allowed
    assert stub.Check(check("aon:a", scope="aon", dry_run=True)).remaining == 3


@pytest.mark.parametrize("count", [0, 1001])
def test_batch_size_is_validated(stub: ratelimit_pb2_grpc.RateLimitServiceStub, count: int) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.CheckBatch(pb.CheckBatchRequest(checks=[check(f"n:{i}") for i in range(count)]), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None and "checks" in caught.value.details()


class _Counted:
    """Wraps a real stub method and counts the calls and checks that go through it."""

    def __init__(self, method: Any) -> None:
        self.method = method
        self.calls: list[int] = []

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        self.calls.append(len(request.checks) if hasattr(request, "checks") else 1)
        return self.method(request, **kwargs)


class _CountedStream:
    """Wraps a real stub's CheckBatchStream: counts the streams opened and the checks of each batch."""

    def __init__(self, method: Any) -> None:
        self.method = method
        self.opened = 0
        self.calls: list[int] = []
        self.probe: Any = None  # called as each batch is written
        self.probed: list[Any] = []

    def __call__(self, requests: Any, **kwargs: Any) -> Any:
        self.opened += 1

        async def counted() -> Any:
            async for request in requests:
                self.calls.append(len(request.checks))
                if self.probe is not None:
                    self.probed.append(self.probe())
                yield request

        return self.method(counted(), **kwargs)


def _count(client: AsyncClient) -> tuple[_CountedStream, _Counted, _Counted]:
    stub = client.ratelimit._stub
    streamed, batches, singles = (
        _CountedStream(stub.CheckBatchStream),
        _Counted(stub.CheckBatch),
        _Counted(stub.Check),
    )
    stub.CheckBatchStream, stub.CheckBatch, stub.Check = streamed, batches, singles  # type: ignore[method-assign]
    return streamed, batches, singles


def test_the_async_client_batches_concurrent_checks(coord: CoordUnderTest) -> None:
    async def main() -> tuple[list[Any], _CountedStream, _Counted, _Counted, Any, list[Any]]:
        async with AsyncClient(coord.target) as client:
            streamed, batches, singles = _count(client)
            decisions = await asyncio.gather(
                *(client.limit("gw:user", rate="20/m", burst=20) for _ in range(50))
            )
            alone = await client.limit("gw:alone", rate="1/m")
            again = await asyncio.gather(*(client.limit(f"gw:again:{i}", rate="1/m") for i in range(3)))
            return decisions, streamed, batches, singles, alone, again

    decisions, streamed, batches, singles, alone, again = asyncio.run(main())
    assert sum(1 for d in decisions if d.allowed) == 20  # exactly the limit, as 50 Checks would
    assert all(d.retry_after > 0 for d in decisions if not d.allowed)
    # ... but in a few messages of one stream: even batches of at most MAX_BATCH (50 = 25 + 25)
    assert _CheckBatcher.MAX_BATCH < 50 <= 2 * _CheckBatcher.MAX_BATCH
    assert streamed.calls[:-1] == [25, 25]
    assert streamed.calls[-1] == 3 and all(d.allowed for d in again)  # below SPLIT_FROM: one batch
    assert streamed.opened == 1 and batches.calls == []  # the stream stays open between batches
    assert singles.calls == [1] and alone.allowed  # a lone check goes out as a plain Check


def test_a_flush_with_nothing_in_flight_goes_as_two_batches_that_stay_two(coord: CoordUnderTest) -> None:
    # 20 callers in a loop: the first flush (nothing in flight) is split in two; from then on each
    # half's callers come back together and go out again as one batch, so the pair never fragments.
    callers, rounds = 20, 30
    assert _CheckBatcher.SPLIT_FROM <= callers <= _CheckBatcher.MAX_BATCH

    async def main() -> tuple[_CountedStream, list[bool]]:
        async with AsyncClient(coord.target) as client:
            streamed, _, _ = _count(client)

            async def caller(n: int) -> list[bool]:
                return [(await client.limit(f"pair:{n}", rate="1000/s")).allowed for _ in range(rounds)]

            allowed = await asyncio.gather(*(caller(n) for n in range(callers)))
            return streamed, [a for mine in allowed for a in mine]

    streamed, allowed = asyncio.run(main())
    assert len(allowed) == callers * rounds and all(allowed)
    assert sum(streamed.calls) == callers * rounds
    assert streamed.calls[:2] == [10, 10]
    assert set(streamed.calls) == {10}, f"the two batches fragmented: {sorted(set(streamed.calls))}"


def test_a_bad_check_fails_only_its_own_caller(coord: CoordUnderTest) -> None:
    async def main() -> list[Any]:
        async with AsyncClient(coord.target) as client:
            return await asyncio.gather(
                client.limit("gw:fine:1", rate="5/m"),
                client.limit("", rate="5/m"),
                client.limit("gw:fine:2", rate="5/m"),
                return_exceptions=True,
            )

    first, bad, last = asyncio.run(main())
    assert first.allowed and last.allowed
    assert isinstance(bad, InvalidArgument) and bad.field_violations[0][0] == "descriptors[0].key"


def test_batches_shrink_to_the_servers_batch_limit(redis_factory: Any, start_coord: Any) -> None:
    redis: RedisProcess = redis_factory()
    server = start_coord(redis.url, max_batch=4)

    async def main() -> tuple[list[Any], list[int]]:
        async with AsyncClient(server.target) as client:
            streamed, _, _ = _count(client)
            decisions = await asyncio.gather(*(client.limit(f"small:{i}", rate="1/m") for i in range(10)))
            return decisions, streamed.calls

    decisions, calls = asyncio.run(main())
    assert all(d.allowed for d in decisions)
    assert calls[0] == 10 and sorted(calls[1:]) == [2, 4, 4]  # refused once, then sent in fours


def _stream_batches(
    stub: ratelimit_pb2_grpc.RateLimitServiceStub, *batches: pb.CheckBatchStreamRequest
) -> dict[int, pb.CheckBatchStreamResponse]:
    replies = stub.CheckBatchStream(iter(batches), timeout=10)
    return {reply.batch_id: reply for reply in replies}


def test_a_batch_stream_answers_each_batch_by_its_id(stub: ratelimit_pb2_grpc.RateLimitServiceStub) -> None:
    replies = _stream_batches(
        stub,
        pb.CheckBatchStreamRequest(batch_id=7, checks=[check("bs:1") for _ in range(4)]),
        pb.CheckBatchStreamRequest(batch_id=9, checks=[check("bs:2"), check(""), check("bs:1")]),
    )
    assert sorted(replies) == [7, 9]
    first = [r.check for r in replies[7].results]
    assert [c.allowed for c in first] == [True, True, True, False]  # decided as four Checks would be
    kinds = [r.WhichOneof("result") for r in replies[9].results]
    assert kinds == ["check", "error", "check"]  # one bad check fails alone
    assert replies[9].results[0].check.allowed and not replies[9].results[2].check.allowed
    assert not replies[7].HasField("error") and not replies[9].HasField("error")


@pytest.mark.parametrize(
    ("checks", "timeout", "field"),
    [
        (0, None, "checks"),
        (1001, None, "checks"),
        (1, duration_pb2.Duration(nanos=1000), "timeout"),
        (1, duration_pb2.Duration(seconds=3601), "timeout"),
        (1, duration_pb2.Duration(seconds=-1), "timeout"),
    ],
)
def test_a_batch_the_call_would_refuse_gets_an_error_and_the_stream_goes_on(
    stub: ratelimit_pb2_grpc.RateLimitServiceStub, checks: int, timeout: Any, field: str
) -> None:
    bad = pb.CheckBatchStreamRequest(batch_id=1, checks=[check(f"bad:{i}") for i in range(checks)])
    if timeout is not None:
        bad.timeout.CopyFrom(timeout)
    replies = _stream_batches(stub, bad, pb.CheckBatchStreamRequest(batch_id=2, checks=[check("after:bad")]))
    error = replies[1].error
    info, fields = error_details(error)
    assert info.domain == "coord" and info.reason
    if checks > 1000:
        assert info.reason == "BATCH_TOO_LARGE" and info.metadata["limit"] == "1000"
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and fields == [field]
    assert not replies[1].results
    assert replies[2].results[0].check.allowed


def test_a_batch_timeout_bounds_its_checks(redis_factory: Any, start_coord: Any) -> None:
    redis: RedisProcess = redis_factory()
    server = start_coord(redis.url, redis_timeout=5.0, ratelimit_timeout=5.0)  # waits this long unless told
    with grpc.insecure_channel(server.target) as channel:
        stub = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        assert stub.Check(check("slow:warm")).allowed
        with redis.client() as client:
            client.execute_command("CLIENT", "PAUSE", "3000", "ALL")  # Redis answers nobody for 3 s
        replies = _stream_batches(
            stub,
            pb.CheckBatchStreamRequest(
                batch_id=1,
                checks=[check("slow:1"), check("slow:2")],
                timeout=duration_pb2.Duration(nanos=300_000_000),
            ),
        )
    # Failed as a CheckBatch call with a 300 ms deadline fails: the batch's own deadline ran out.
    # Had the server waited for Redis up to its 5 s timeout instead, the checks would have been
    # answered once the pause ended (results, no error).
    assert replies[1].error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert error_details(replies[1].error)[0].reason == "DEADLINE_TOO_SHORT"
    assert not replies[1].results


def test_the_client_opens_a_new_stream_after_one_breaks(coord: CoordUnderTest) -> None:
    async def main() -> tuple[list[Any], list[Any], _CountedStream]:
        async with AsyncClient(coord.target) as client:
            streamed, _, _ = _count(client)
            before = await asyncio.gather(*(client.limit(f"re:{i}", rate="5/m") for i in range(4)))
            batcher = client.ratelimit._batcher
            assert batcher is not None and batcher._stream is not None
            batcher._stream._call.cancel()  # the stream breaks (as when a server goes away)
            await asyncio.sleep(0.1)
            after = await asyncio.gather(*(client.limit(f"re:{i}", rate="5/m") for i in range(4)))
            return before, after, streamed

    before, after, streamed = asyncio.run(main())
    assert all(d.allowed and d.remaining == 4 for d in before)
    assert all(d.allowed and d.remaining == 3 for d in after)
    assert streamed.opened == 2


def test_a_server_without_the_batch_stream_gets_unary_batches(coord: CoordUnderTest) -> None:
    async def main() -> tuple[list[Any], _CountedStream, _Counted]:
        async with AsyncClient(coord.target) as client:
            stub = client.ratelimit._stub
            # A method this server does not have: the real UNIMPLEMENTED an older server would answer.
            stub.CheckBatchStream = client.ratelimit._t.channel.stream_stream(  # type: ignore[method-assign]
                "/coord.ratelimit.v1.RateLimitService/NoSuchMethod",
                request_serializer=pb.CheckBatchStreamRequest.SerializeToString,
                response_deserializer=pb.CheckBatchStreamResponse.FromString,
            )
            streamed, batches, _ = _count(client)
            decisions = await asyncio.gather(*(client.limit(f"old:{i}", rate="5/m") for i in range(6)))
            more = await asyncio.gather(*(client.limit(f"old:{i}", rate="5/m") for i in range(6)))
            return decisions + more, streamed, batches

    decisions, streamed, batches = asyncio.run(main())
    assert all(d.allowed for d in decisions)
    assert batches.calls == [6, 6]  # both rounds as CheckBatch calls...
    assert streamed.opened == 1  # ... the stream tried once, not again


def test_a_batch_the_server_never_answers_fails_with_deadline_exceeded(
    redis_factory: Any, tmp_path: Path
) -> None:
    redis: RedisProcess = redis_factory()
    proc, target = start_server_process(redis.url, tmp_path / "coord.log")  # its own process, to freeze it
    try:

        async def main() -> tuple[list[Any], list[Any]]:
            # A default timeout of an hour: only the checks' own 0.3 s can end them within the test's
            # time limit (a batch that waited for the default, or forever, never gets here).
            async with AsyncClient(target, timeout=3600) as client:
                warm = await asyncio.gather(*(client.limit(f"frozen:{i}", rate="5/m") for i in range(2)))
                os.kill(proc.pid, signal.SIGSTOP)  # the stream stays open; nothing answers
                try:
                    late = await asyncio.gather(
                        *(client.limit(f"frozen:{i}", rate="5/m", timeout=0.3) for i in range(2)),
                        return_exceptions=True,
                    )
                finally:
                    os.kill(proc.pid, signal.SIGCONT)
                return warm, late

        warm, late = asyncio.run(main())
    finally:
        proc.terminate()
        proc.wait(10)
    assert all(d.allowed for d in warm)
    # The client's own timer for the batch (a frozen server sends nothing, not even its deadline).
    assert all(isinstance(e, DeadlineExceeded) for e in late), late


def test_timeouts_the_server_would_refuse_still_behave_as_for_a_call(coord: CoordUnderTest) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        async with AsyncClient(coord.target, timeout=7200) as client:  # above the 1 hour a batch takes
            slow = await asyncio.gather(*(client.limit(f"long:{i}", rate="5/m") for i in range(3)))
            none_left = await asyncio.gather(
                *(client.limit(f"zero:{i}", rate="5/m", timeout=0) for i in range(3)), return_exceptions=True
            )
            return slow, none_left

    slow, none_left = asyncio.run(main())
    assert all(d.allowed for d in slow)
    assert all(isinstance(e, DeadlineExceeded) for e in none_left), none_left


def test_many_batches_at_once_all_get_decided(coord: CoordUnderTest) -> None:
    async def main() -> tuple[list[Any], _CountedStream]:
        async with AsyncClient(coord.target) as client:
            streamed, _, _ = _count(client)
            batcher = client.ratelimit._batcher
            assert batcher is not None
            streamed.probe = lambda: len(batcher._stream._written) if batcher._stream else 0
            checks = 50 * _CheckBatcher.MAX_BATCH  # 50 batches: more than may be in flight
            decisions = await asyncio.gather(*(client.limit(f"many:{i}", rate="5/m") for i in range(checks)))
            return decisions, streamed

    decisions, streamed = asyncio.run(main())
    assert len(decisions) == 50 * _CheckBatcher.MAX_BATCH
    assert all(d.allowed and d.remaining == 4 for d in decisions)
    assert len(streamed.calls) == 50 > BATCHES_IN_FLIGHT and sum(streamed.calls) == len(decisions)
    assert max(streamed.probed) <= BATCHES_IN_FLIGHT  # written and unanswered at once: never more
