"""Observe: the current state first, then every change of leadership in order; resuming after a
revision without missing a change; a gap when the log no longer has the changes; leases that run
out seen by observers — against single-node Redis and Redis Cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from coord.election.v1 import election_pb2 as pb

from ..conftest import CoordThread, CoordUnderTest
from ._util import CampaignStream, Observing, Stub, election_stub, leader

CURRENT, ELECTED, PROCLAIMED, ENDED = (
    pb.CHANGE_KIND_CURRENT,
    pb.CHANGE_KIND_ELECTED,
    pb.CHANGE_KIND_PROCLAIMED,
    pb.CHANGE_KIND_ENDED,
)


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with election_stub(coord.target) as s:
        yield s


def revision(text: str) -> tuple[int, int]:
    a, b = text.split("-")
    return int(a), int(b)


def proclaim(stub: Stub, led: pb.Leadership, value: bytes) -> pb.ProclaimResponse:
    request = pb.ProclaimRequest(name="E", term=led.term, leader_token=led.leader_token, value=value)
    return stub.Proclaim(request)


def test_the_state_first_then_every_change_in_order(stub: Stub) -> None:
    watch = Observing(stub)
    first = watch.next()
    assert first.kind == CURRENT and not first.HasField("leader") and not first.gap and first.revision
    a = CampaignStream(stub)
    led_a = a.elected(value=b"a")
    b = CampaignStream(stub)
    b.join(value=b"b")
    b.next()
    proclaim(stub, led_a, b"a2")
    a.resign()
    led_b = b.next().elected
    b.cut()
    expected = [
        (ELECTED, led_a.term, b"a"),
        (PROCLAIMED, led_a.term, b"a2"),
        (ENDED, led_a.term, None),
        (ELECTED, led_b.term, b"b"),
        (ENDED, led_b.term, None),
    ]
    seen = [watch.next() for _ in expected]
    for change, (kind, term, value) in zip(seen, expected, strict=True):
        assert change.kind == kind
        if kind == ENDED:
            assert change.ended_term == term and not change.HasField("leader")
            assert change.end_reason == pb.END_REASON_RESIGNED
        else:
            assert change.leader.term == term and change.leader.value == value
            assert change.leader.elect_time.ToMilliseconds() > 0
    revisions = [revision(first.revision)] + [revision(c.revision) for c in seen]
    assert revisions == sorted(set(revisions)), "revisions strictly increase"
    assert seen[0].revision == led_a.revision and seen[3].revision == led_b.revision
    watch.cancel()


def test_a_stream_that_starts_during_a_leadership_sees_it_first(stub: Stub) -> None:
    a = CampaignStream(stub)
    led = a.elected(value=b"a")
    proclaim(stub, led, b"a2")
    watch = Observing(stub)
    first = watch.next()
    assert first.kind == CURRENT and first.leader.term == led.term and first.leader.value == b"a2"
    assert first.revision == leader(stub).revision
    a.close()
    ended = watch.next()
    assert ended.kind == ENDED and ended.ended_term == led.term
    watch.cancel()


def test_resume_after_any_revision_misses_nothing(stub: Stub) -> None:
    watch = Observing(stub)
    start = watch.next()
    a = CampaignStream(stub)
    led = a.elected()
    for i in range(5):
        proclaim(stub, led, f"v{i}".encode())
    a.close()
    seen = [watch.next() for _ in range(7)]
    watch.cancel()
    assert seen[-1].kind == ENDED
    # Resuming after each revision gives exactly the changes after it, and then follows live ones.
    for index, after in enumerate([start.revision] + [c.revision for c in seen]):
        resumed = Observing(stub, after=after)
        rest = [resumed.next() for _ in seen[index:]]
        assert [(c.kind, c.revision) for c in rest] == [(c.kind, c.revision) for c in seen[index:]]
        resumed.cancel()
    late = Observing(stub, after=seen[-1].revision)
    b = CampaignStream(stub)
    elected = b.elected()
    assert late.next().revision == elected.revision
    b.close()
    assert late.next().kind == ENDED
    late.cancel()


def test_a_resume_point_the_log_no_longer_has_is_a_gap(stub: Stub) -> None:
    a = CampaignStream(stub)
    led = a.elected(value=b"a")
    first = led.revision
    # The log keeps the newest 1000 changes: these push the election out of it.
    for i in range(1001):
        assert proclaim(stub, led, str(i).encode()).proclaimed
    watch = Observing(stub, after=first)
    gap = watch.next()
    assert gap.kind == CURRENT and gap.gap and gap.leader.value == b"1000"
    assert gap.revision == leader(stub).revision
    a.close()
    assert watch.next().kind == ENDED
    watch.cancel()
    # The revision just before the oldest kept change still resumes without a gap.
    with_gap = Observing(stub, after=f"{led.term}-2")
    assert with_gap.next().gap
    with_gap.cancel()
    fine = Observing(stub, after=f"{led.term}-3")
    kept = fine.next()
    assert kept.kind == PROCLAIMED and kept.revision == f"{led.term}-4" and not kept.gap
    fine.cancel()


def test_a_revision_from_the_future_is_a_gap(stub: Stub) -> None:
    watch = Observing(stub, after=f"{(1 << 53) - 1}-0")
    first = watch.next()
    assert first.kind == CURRENT and first.gap and not first.HasField("leader")
    watch.cancel()


def test_many_observers_of_one_election_see_the_same_changes(stub: Stub) -> None:
    watchers = [Observing(stub) for _ in range(5)]
    starts = [w.next() for w in watchers]
    assert all(s.kind == CURRENT for s in starts)
    a = CampaignStream(stub)
    led = a.elected()
    for i in range(20):
        proclaim(stub, led, str(i).encode())
    a.close()
    streams = [[(c.kind, c.revision) for c in (w.next() for _ in range(22))] for w in watchers]
    assert all(s == streams[0] for s in streams)
    assert [kind for kind, _ in streams[0]] == [ELECTED] + [PROCLAIMED] * 20 + [ENDED]
    for w in watchers:
        w.cancel()


def test_observers_see_a_lease_that_ran_out_unnoticed(
    coord: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    """A leader whose lease runs out with no script of the election running (its server died) ends
    for the observers soon after: their feed looks at the expiry it knows, and at least every
    COORD_LOCK_FALLBACK (a keep-alive may have brought the expiry closer)."""
    server = start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", lock_fallback=0.2)
    with election_stub(server.target) as stub:
        _lease_ran_out_unnoticed(coord, stub)


def _lease_ran_out_unnoticed(coord: CoordUnderTest, stub: Stub) -> None:
    watch = Observing(stub)
    watch.next()
    a = CampaignStream(stub)
    led = a.elected(ttl=60)
    assert watch.next().kind == ELECTED
    # As if the server holding the stream had died: the grant's expiry is brought forward in Redis,
    # the stream's own lease timer still has a minute.
    with coord.redis() as r:
        now_ms = int(r.time()[0]) * 1000
        key = "coord:default:election:{E}:h"
        r.zadd(key, {led.leader_token: now_ms + 300})
    ended = watch.next()
    assert ended.kind == ENDED and ended.ended_term == led.term
    assert ended.end_reason == pb.END_REASON_EXPIRED
    assert not leader(stub).HasField("leader")
    a.keep_alive()
    assert a.next().lost.reason == pb.LOST_REASON_EXPIRED
    watch.cancel()


def test_an_observer_far_behind_reads_from_redis_instead() -> None:
    """Batches queued for a slow stream are dropped for one mark at the newest of them: the stream
    then reads what it missed from Redis (with a gap if the log no longer has it), never skips it."""
    from coord_server.election.observe import MAX_BEHIND, Observer
    from coord_server.election.store import Change, ChangeKind

    observer = Observer()
    for i in range(MAX_BEHIND + 3):
        observer.push(((7, i), [Change(ChangeKind.PROCLAIMED, f"7-{i + 1}", 0)]))
    assert observer.inbox.qsize() == 3
    assert observer.inbox.get_nowait() == ((7, MAX_BEHIND + 1), [])
    assert observer.inbox.get_nowait()[0] == (7, MAX_BEHIND + 1)
