"""CheckBatch: every check of a batch is decided exactly as Check would decide it, on its own; and the
asyncio client sends its concurrent checks through it without any caller noticing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_status import rpc_status

from coord.ratelimit.v1 import ratelimit_pb2 as pb
from coord.ratelimit.v1 import ratelimit_pb2_grpc
from coord_client import AsyncClient, InvalidArgument
from coord_client.ratelimit import _CheckBatcher

from ..conftest import CoordUnderTest, RedisProcess
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


def _count(client: AsyncClient) -> tuple[_Counted, _Counted]:
    stub = client.ratelimit._stub
    batches, singles = _Counted(stub.CheckBatch), _Counted(stub.Check)
    stub.CheckBatch, stub.Check = batches, singles  # type: ignore[method-assign]
    return batches, singles


def test_the_async_client_batches_concurrent_checks(coord: CoordUnderTest) -> None:
    async def main() -> tuple[list[Any], list[int], list[int], Any]:
        async with AsyncClient(coord.target) as client:
            batches, singles = _count(client)
            decisions = await asyncio.gather(
                *(client.limit("gw:user", rate="20/m", burst=20) for _ in range(50))
            )
            alone = await client.limit("gw:alone", rate="1/m")
            return decisions, batches.calls, singles.calls, alone

    decisions, batch_calls, single_calls, alone = asyncio.run(main())
    assert sum(1 for d in decisions if d.allowed) == 20  # exactly the limit, as 50 Checks would
    assert all(d.retry_after > 0 for d in decisions if not d.allowed)
    # ... but in a few calls: batches of at most MAX_BATCH, several in flight at once
    assert sum(batch_calls) == 50 and max(batch_calls) <= _CheckBatcher.MAX_BATCH
    assert len(batch_calls) == -(-50 // _CheckBatcher.MAX_BATCH)
    assert single_calls == [1] and alone.allowed  # a lone check goes out as a plain Check


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
            batches, _ = _count(client)
            decisions = await asyncio.gather(*(client.limit(f"small:{i}", rate="1/m") for i in range(10)))
            return decisions, batches.calls

    decisions, calls = asyncio.run(main())
    assert all(d.allowed for d in decisions)
    assert calls[0] == 10 and sorted(calls[1:]) == [2, 4, 4]  # refused once, then sent in fours
