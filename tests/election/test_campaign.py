"""Campaign, Leader, Proclaim and Resign over gRPC: queued -> elected -> lost or resigned, terms
that only grow, fencing by term, against single-node Redis and Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from coord.election.v1 import election_pb2 as pb

from ..conftest import CoordUnderTest, wait_for
from ._util import CampaignStream, Stub, election_stub, leader


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with election_stub(coord.target) as s:
        yield s


def test_campaign_elected_then_resigned(stub: Stub) -> None:
    assert not leader(stub).HasField("leader")
    first = CampaignStream(stub)
    elected = first.elected(value=b"host-a", ttl=10)
    assert elected.term > 0 and elected.leader_token and elected.value == b"host-a"
    assert elected.revision and elected.valid_for.ToMilliseconds() <= 10_000
    now = leader(stub)
    assert now.leader.term == elected.term and now.leader.value == b"host-a"
    assert now.leader.elect_time == elected.elect_time and now.revision == elected.revision
    first.keep_alive()
    renewed = first.next().renewed
    assert renewed.term == elected.term and renewed.valid_for.ToMilliseconds() > 0
    first.resign()
    assert first.next().resigned.was_leader
    with pytest.raises(StopIteration):
        first.next()
    assert not leader(stub).HasField("leader")


def test_second_candidate_waits_then_leads_with_a_higher_term(stub: Stub) -> None:
    first = CampaignStream(stub)
    term1 = first.elected(value=b"a").term
    second = CampaignStream(stub)
    second.join(value=b"b")
    queued = second.next().queued
    assert queued.position == 1 and queued.leader_term == term1
    third = CampaignStream(stub)
    third.join(value=b"c")
    assert third.next().queued.position == 2
    first.resign()
    assert first.next().resigned.was_leader
    term2 = second.next().elected.term
    assert term2 > term1 and leader(stub).leader.value == b"b"
    second.cut()  # a broken stream ends the leadership at once: the next in line leads
    elected = third.next().elected
    assert elected.term > term2 and elected.value == b"c"
    third.close()  # so does a stream the client closes
    with pytest.raises(StopIteration):
        third.next()
    wait_for(lambda: not leader(stub).HasField("leader"), "nobody to lead")


def test_resign_while_queued_leaves_the_queue(stub: Stub) -> None:
    first = CampaignStream(stub)
    term = first.elected().term
    second = CampaignStream(stub)
    second.join()
    second.next()
    second.resign()
    assert not second.next().resigned.was_leader
    first.close()
    wait_for(lambda: not leader(stub).HasField("leader"), "nobody to lead")
    third = CampaignStream(stub)
    assert third.elected().term > term  # the queue is empty: elected at once
    third.close()


def test_proclaim_is_fenced_by_the_term(stub: Stub) -> None:
    first = CampaignStream(stub)
    old = first.elected(value=b"v1")
    done = stub.Proclaim(
        pb.ProclaimRequest(name="E", term=old.term, leader_token=old.leader_token, value=b"v2")
    )
    assert done.proclaimed and done.leader.value == b"v2" and done.leader.term == old.term
    assert done.revision != old.revision and leader(stub).leader.value == b"v2"
    assert leader(stub).leader.elect_time == old.elect_time
    # The right term with another token, or the right token with another term: refused.
    for term, token in ((old.term, "not-the-token"), (old.term + 1, old.leader_token)):
        refused = stub.Proclaim(pb.ProclaimRequest(name="E", term=term, leader_token=token, value=b"x"))
        assert not refused.proclaimed and refused.leader.value == b"v2"
    first.resign()
    first.next()
    second = CampaignStream(stub)
    new = second.elected(value=b"w")
    # The deposed leader's Proclaim is refused, and changes nothing.
    refused = stub.Proclaim(
        pb.ProclaimRequest(name="E", term=old.term, leader_token=old.leader_token, value=b"stale")
    )
    assert not refused.proclaimed
    assert refused.leader.term == new.term and refused.leader.value == b"w"
    assert leader(stub).leader.value == b"w"
    second.close()


def test_resign_by_term_is_idempotent_and_reaches_the_campaign(stub: Stub) -> None:
    first = CampaignStream(stub)
    led = first.elected(ttl=30)
    wrong = stub.Resign(pb.ResignRequest(name="E", term=led.term + 1, leader_token=led.leader_token))
    assert wrong.outcome == pb.RESIGN_OUTCOME_NOT_LEADER
    unknown = stub.Resign(pb.ResignRequest(name="E", term=led.term, leader_token="unknown"))
    assert unknown.outcome == pb.RESIGN_OUTCOME_NOT_LEADER
    assert leader(stub).leader.term == led.term
    for _ in range(2):
        done = stub.Resign(pb.ResignRequest(name="E", term=led.term, leader_token=led.leader_token))
        assert done.outcome == pb.RESIGN_OUTCOME_RESIGNED
    assert not leader(stub).HasField("leader")
    first.keep_alive()  # the stream learns of it at its next keep-alive
    lost = first.next().lost
    assert lost.reason == pb.LOST_REASON_ENDED and lost.message
    with pytest.raises(StopIteration):
        first.next()


def test_a_lease_without_keep_alives_is_lost(stub: Stub) -> None:
    first = CampaignStream(stub)
    first.elected(ttl=0.3)
    lost = first.next().lost  # no keep-alive: the server ends it when the lease runs out
    assert lost.reason == pb.LOST_REASON_EXPIRED
    assert not leader(stub).HasField("leader")


def test_elections_of_different_names_and_locks_are_independent(coord: CoordUnderTest, stub: Stub) -> None:
    from coord.lock.v1 import lock_pb2, lock_pb2_grpc

    a, b = CampaignStream(stub), CampaignStream(stub)
    a.elected("one")
    b.elected("two")
    with grpc.insecure_channel(coord.target) as channel:
        locks = lock_pb2_grpc.LockServiceStub(channel)
        grant = locks.Acquire(lock_pb2.AcquireRequest(name="one", mode=lock_pb2.LOCK_MODE_EXCLUSIVE))
        assert grant.acquired  # the lock "one" is not the election "one"
    a.close()
    b.close()


def test_every_key_expires_and_stays_in_the_election_space(coord: CoordUnderTest, stub: Stub) -> None:
    first = CampaignStream(stub)
    led = first.elected(value=b"v")
    second = CampaignStream(stub)
    second.join()
    second.next()
    stub.Proclaim(pb.ProclaimRequest(name="E", term=led.term, leader_token=led.leader_token, value=b"w"))
    with coord.redis() as r:
        keys = [k.decode() for k in r.scan_iter(match="*")]
        assert keys and all(k.startswith("coord:default:election:") for k in keys), keys
        assert {k.rsplit(":", 1)[1] for k in keys} >= {"h", "d", "fence", "q", "qx", "qd", "leader", "log"}
        for key in keys:
            assert r.pttl(key) > 0, key
    first.close()
    second.close()


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.CampaignRequest(keep_alive=pb.CampaignKeepAlive()), "join"),
        (pb.CampaignRequest(join=pb.CampaignJoin(name="")), "join.name"),
    ],
)
def test_a_bad_first_message_is_refused(stub: Stub, request_: pb.CampaignRequest, field: str) -> None:
    stream = CampaignStream(stub)
    stream.send(request_)
    with pytest.raises(grpc.RpcError) as caught:
        stream.next()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


def test_bad_unary_requests_are_refused(stub: Stub) -> None:
    bad = [
        lambda: stub.Leader(pb.LeaderRequest(name="")),
        lambda: stub.Proclaim(pb.ProclaimRequest(name="E", term=0, leader_token="t")),
        lambda: stub.Proclaim(pb.ProclaimRequest(name="E", term=1, leader_token="")),
        lambda: stub.Resign(pb.ResignRequest(name="E", term=0, leader_token="t")),
        lambda: next(stub.Observe(pb.ObserveRequest(name="E", after_revision="nope"))),
        lambda: next(stub.Observe(pb.ObserveRequest(name="E", after_revision=f"{1 << 60}-0"))),
    ]
    for call in bad:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
