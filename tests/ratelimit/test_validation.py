"""Every malformed request is refused with INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import grpc
import pytest

from .helpers import FIXED_WINDOW, SLIDING_LOG, SLIDING_WINDOW, Limiter, bad_field, desc, dur, pb, rule

OK = rule(10, 60)

CASES = [
    ("no descriptors", pb.CheckRequest(), "descriptors", "INVALID_FIELD"),
    ("empty key", pb.CheckRequest(descriptors=[desc("", OK)]), "descriptors[0].key", "INVALID_FIELD"),
    (
        "key too long",
        pb.CheckRequest(descriptors=[desc("k" * 1025, OK)]),
        "descriptors[0].key",
        "KEY_TOO_LONG",
    ),
    (
        "no rule",
        pb.CheckRequest(descriptors=[pb.Descriptor(key="k")]),
        "descriptors[0].rule",
        "INVALID_FIELD",
    ),
    ("zero limit", pb.CheckRequest(descriptors=[desc("k", rule(0, 60))]), "descriptors[0].rule.limit", ""),
    (
        "negative limit",
        pb.CheckRequest(descriptors=[desc("k", rule(-5, 60))]),
        "descriptors[0].rule.limit",
        "",
    ),
    (
        "no period",
        pb.CheckRequest(descriptors=[desc("k", pb.Rule(limit=5))]),
        "descriptors[0].rule.period",
        "",
    ),
    (
        "negative period",
        pb.CheckRequest(descriptors=[desc("k", pb.Rule(limit=5, period=dur(-1)))]),
        "descriptors[0].rule.period",
        "",
    ),
    (
        # 1.999999 ms was once used as 1 ms: twice the rate asked for.
        "period not whole milliseconds",
        pb.CheckRequest(descriptors=[desc("k", pb.Rule(limit=5, period=dur(0.001999999)))]),
        "descriptors[0].rule.period",
        "INVALID_FIELD",
    ),
    (
        "period of seconds and microseconds",
        pb.CheckRequest(descriptors=[desc("k", pb.Rule(limit=5, period=dur(60.0005)))]),
        "descriptors[0].rule.period",
        "INVALID_FIELD",
    ),
    (
        "period too long",
        pb.CheckRequest(descriptors=[desc("k", rule(5, 367 * 86400))]),
        "descriptors[0].rule.period",
        "",
    ),
    (
        "rate faster than 1/us",
        pb.CheckRequest(descriptors=[desc("k", rule(2000, 0.001))]),
        "descriptors[0].rule.limit",
        "",
    ),
    (
        "sliding log too large",
        pb.CheckRequest(descriptors=[desc("k", rule(1001, 60, SLIDING_LOG))]),
        "descriptors[0].rule.limit",
        "",
    ),
    (
        "negative burst",
        pb.CheckRequest(descriptors=[desc("k", rule(5, 60, burst=-1))]),
        "descriptors[0].rule.burst",
        "",
    ),
    (
        "burst on a fixed window",
        pb.CheckRequest(descriptors=[desc("k", rule(5, 60, FIXED_WINDOW, burst=3))]),
        "descriptors[0].rule.burst",
        "",
    ),
    (
        "bucket too slow to refill",
        pb.CheckRequest(descriptors=[desc("k", rule(1, 366 * 86400, burst=100))]),
        "descriptors[0].rule.burst",
        "",
    ),
    (
        "unknown algorithm",
        pb.CheckRequest(descriptors=[desc("k", rule(5, 60, 99))]),
        "descriptors[0].rule.algorithm",
        "",
    ),
    (
        "unknown failure mode",
        pb.CheckRequest(descriptors=[desc("k", rule(5, 60, on_backend_error=9))]),
        "descriptors[0].rule.on_backend_error",
        "",
    ),
    (
        "bad rule name",
        pb.CheckRequest(descriptors=[desc("k", rule(5, 60, name='a"b'))]),
        "descriptors[0].rule.name",
        "",
    ),
    ("unknown mode", pb.CheckRequest(descriptors=[desc("k", OK)], mode=7), "mode", ""),
    ("negative cost", pb.CheckRequest(descriptors=[desc("k", OK)], cost=-1), "cost", ""),
    (
        "negative descriptor cost",
        pb.CheckRequest(descriptors=[desc("k", OK, cost=-2)]),
        "descriptors[0].cost",
        "",
    ),
    (
        "cost above burst",
        pb.CheckRequest(descriptors=[desc("k", rule(10, 60, burst=4))], cost=5),
        "cost",
        "RATELIMIT_COST_TOO_HIGH",
    ),
    (
        "descriptor cost above limit",
        pb.CheckRequest(descriptors=[desc("k", rule(3, 60, SLIDING_WINDOW), cost=4)]),
        "descriptors[0].cost",
        "RATELIMIT_COST_TOO_HIGH",
    ),
    (
        "unknown policy",
        pb.CheckRequest(descriptors=[pb.Descriptor(key="k", policy="nope")]),
        "descriptors[0].policy",
        "RATELIMIT_UNKNOWN_POLICY",
    ),
    (
        "empty policy",
        pb.CheckRequest(descriptors=[pb.Descriptor(key="k", policy="")]),
        "descriptors[0].policy",
        "",
    ),
    (
        "duplicate key and algorithm",
        pb.CheckRequest(descriptors=[desc("k", OK), desc("k", rule(1, 1))]),
        "descriptors[1].key",
        "",
    ),
    (
        "scope too long",
        pb.CheckRequest(descriptors=[desc("k", OK)], scope="s" * 1025),
        "scope",
        "KEY_TOO_LONG",
    ),
    (
        "second descriptor is the bad one",
        pb.CheckRequest(descriptors=[desc("a", OK), desc("b", rule(5, 0))], scope="s"),
        "descriptors[1].rule.period",
        "",
    ),
]


@pytest.mark.parametrize(("request_", "field", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_refuses(coord_single, request_, field, reason):
    rl = Limiter(coord_single.target)
    with pytest.raises(grpc.RpcError) as caught:
        rl.stub.Check(request_, timeout=10)
    got_field, got_reason = bad_field(caught.value)
    assert got_field == field
    assert field in caught.value.details()
    if reason:
        assert got_reason == reason
    rl.close()


def test_too_many_descriptors(coord_single):
    rl = Limiter(coord_single.target)
    with pytest.raises(grpc.RpcError) as caught:
        rl.check(*[desc(f"k{i}", OK) for i in range(1001)], mode=pb.MODE_INDEPENDENT)
    assert bad_field(caught.value) == ("descriptors", "BATCH_TOO_LARGE")
    rl.close()


@pytest.mark.parametrize(
    ("request_", "field"),
    [(pb.ResetRequest(), "key"), (pb.ResetRequest(key="k", scope="s" * 1025), "scope")],
)
def test_reset_refuses(coord_single, request_, field):
    rl = Limiter(coord_single.target)
    with pytest.raises(grpc.RpcError) as caught:
        rl.stub.Reset(request_, timeout=10)
    assert bad_field(caught.value)[0] == field
    rl.close()


def test_a_period_that_is_not_whole_milliseconds_says_what_it_got(coord_single):
    rl = Limiter(coord_single.target)
    with pytest.raises(grpc.RpcError) as caught:
        rl.one("k", pb.Rule(limit=5, period=dur(0.001999999)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "whole number of milliseconds" in caught.value.details()
    assert "1.999999ms" in caught.value.details()
    # Within a CheckBatch the one check fails, naming the field; the others are decided.
    reply = rl.stub.CheckBatch(
        pb.CheckBatchRequest(
            checks=[
                pb.CheckRequest(descriptors=[desc("a", pb.Rule(limit=5, period=dur(1.5e-3)))]),
                pb.CheckRequest(descriptors=[desc("b", OK)]),
            ]
        ),
        timeout=10,
    )
    assert reply.results[0].WhichOneof("result") == "error"
    assert "descriptors[0].rule.period" in reply.results[0].error.message
    assert reply.results[1].check.allowed
    rl.close()


def test_a_batch_timeout_is_a_bound_and_finer_than_a_millisecond_is_accepted(coord_single):
    """A CheckBatchStream batch timeout is a deadline, not a rate: clients derive it from their own
    deadline (any float), so sub-millisecond precision is dropped rather than refused."""
    rl = Limiter(coord_single.target)
    batch = pb.CheckBatchStreamRequest(
        batch_id=7, checks=[pb.CheckRequest(descriptors=[desc("k", OK)])], timeout=dur(5.0005)
    )
    replies = rl.stub.CheckBatchStream(iter([batch]), timeout=10)
    answer = next(replies)
    assert answer.batch_id == 7 and not answer.HasField("error")
    assert answer.results[0].check.allowed
    rl.close()
