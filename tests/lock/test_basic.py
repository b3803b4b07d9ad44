"""LockService unary RPCs over the wire: try-lock, release, extend, describe, fencing, modes —
against single-node Redis and Redis Cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from coord.lock.v1 import lock_pb2 as pb

from ..conftest import CoordUnderTest, wait_for
from ._util import S, Stub, X, acquire, describe, dur, lock_stub, release


@pytest.fixture
def stub(coord: CoordUnderTest) -> Iterator[Stub]:
    with lock_stub(coord.target) as s:
        yield s


def test_try_lock_grants_then_denies_with_holder_info(stub: Stub) -> None:
    first = acquire(stub, owner="worker-1", ttl=30)
    assert first.acquired
    grant = first.grant
    assert grant.name == "L" and grant.mode == X
    assert len(grant.lock_token) >= 24 and grant.fencing_token > 0
    assert 29_000 < grant.valid_for.ToMilliseconds() <= 30_000
    assert grant.expire_time.ToMilliseconds() > 0

    second = acquire(stub, owner="worker-2")
    assert not second.acquired and not second.HasField("grant")
    assert second.queue_position == 0 and second.queue_length == 0
    [holder] = second.holders
    assert holder.owner == "worker-1" and holder.mode == X
    assert holder.fencing_token == grant.fencing_token
    assert 0 < holder.remaining.ToMilliseconds() <= 30_000
    assert holder.expire_time.ToMilliseconds() == grant.expire_time.ToMilliseconds()


def test_tokens_are_random_per_grant(stub: Stub) -> None:
    tokens = set()
    for _ in range(5):
        grant = acquire(stub, owner="same-owner").grant
        tokens.add(grant.lock_token)
        assert release(stub, "L", grant.lock_token) == pb.RELEASE_OUTCOME_RELEASED
    assert len(tokens) == 5


def test_release_outcomes(stub: Stub) -> None:
    grant = acquire(stub).grant
    assert release(stub, "L", "not-the-token") == pb.RELEASE_OUTCOME_HELD_BY_OTHER
    assert describe(stub).holder_count == 1, "a wrong token must not touch the grant"
    assert release(stub, "L", grant.lock_token) == pb.RELEASE_OUTCOME_RELEASED
    assert release(stub, "L", grant.lock_token) == pb.RELEASE_OUTCOME_RELEASED, "idempotent"
    assert release(stub, "L", "not-the-token") == pb.RELEASE_OUTCOME_NOT_HELD
    assert release(stub, "other-lock", grant.lock_token) == pb.RELEASE_OUTCOME_NOT_HELD
    # A stale token after someone else got the lock: their grant is untouched.
    newer = acquire(stub).grant
    assert release(stub, "L", grant.lock_token) == pb.RELEASE_OUTCOME_RELEASED
    assert describe(stub).holders[0].fencing_token == newer.fencing_token


def test_release_after_expiry_says_expired(stub: Stub) -> None:
    grant = acquire(stub, ttl=0.05).grant
    wait_for(lambda: describe(stub).holder_count == 0, "the grant to expire", timeout=5)
    assert release(stub, "L", grant.lock_token) == pb.RELEASE_OUTCOME_EXPIRED
    # Also after a later grant purged it from the live set.
    grant2 = acquire(stub, ttl=0.05).grant
    wait_for(lambda: describe(stub).holder_count == 0, "the grant to expire", timeout=5)
    acquire(stub)
    assert release(stub, "L", grant2.lock_token) == pb.RELEASE_OUTCOME_EXPIRED


def test_extend_renews_only_with_the_token(stub: Stub) -> None:
    grant = acquire(stub, ttl=1).grant
    resp = stub.Extend(pb.ExtendRequest(name="L", lock_token=grant.lock_token, ttl=dur(120)))
    assert resp.outcome == pb.EXTEND_OUTCOME_EXTENDED
    assert resp.fencing_token == grant.fencing_token
    assert 119_000 < resp.valid_for.ToMilliseconds() <= 120_000
    assert resp.expire_time.ToMilliseconds() > grant.expire_time.ToMilliseconds()
    assert describe(stub).holders[0].expire_time == resp.expire_time

    wrong = stub.Extend(pb.ExtendRequest(name="L", lock_token="nope", ttl=dur(5)))
    assert wrong.outcome == pb.EXTEND_OUTCOME_HELD_BY_OTHER and not wrong.HasField("expire_time")
    assert release(stub, "L", grant.lock_token) == pb.RELEASE_OUTCOME_RELEASED
    after = stub.Extend(pb.ExtendRequest(name="L", lock_token=grant.lock_token, ttl=dur(5)))
    assert after.outcome == pb.EXTEND_OUTCOME_RELEASED
    assert describe(stub).holder_count == 0
    unknown = stub.Extend(pb.ExtendRequest(name="L", lock_token="nope", ttl=dur(5)))
    assert unknown.outcome == pb.EXTEND_OUTCOME_NOT_HELD


def test_extend_after_expiry_fails_and_resume_needs_no_grant_since(stub: Stub) -> None:
    grant = acquire(stub, ttl=0.05).grant
    wait_for(lambda: describe(stub).holder_count == 0, "the grant to expire", timeout=5)
    plain = stub.Extend(pb.ExtendRequest(name="L", lock_token=grant.lock_token, ttl=dur(30)))
    assert plain.outcome == pb.EXTEND_OUTCOME_EXPIRED
    assert describe(stub).holder_count == 0

    resumed = stub.Extend(pb.ExtendRequest(name="L", lock_token=grant.lock_token, ttl=dur(30), resume=True))
    assert resumed.outcome == pb.EXTEND_OUTCOME_RESUMED
    assert resumed.fencing_token == grant.fencing_token
    assert describe(stub).holders[0].fencing_token == grant.fencing_token
    assert release(stub, "L", grant.lock_token) == pb.RELEASE_OUTCOME_RELEASED

    # Expire again, let another caller hold and release in between: resuming must now fail.
    again = acquire(stub, ttl=0.05).grant
    wait_for(lambda: describe(stub).holder_count == 0, "the grant to expire", timeout=5)
    other = acquire(stub, ttl=30).grant
    assert release(stub, "L", other.lock_token) == pb.RELEASE_OUTCOME_RELEASED
    late = stub.Extend(pb.ExtendRequest(name="L", lock_token=again.lock_token, ttl=dur(30), resume=True))
    assert late.outcome == pb.EXTEND_OUTCOME_EXPIRED
    assert describe(stub).holder_count == 0


def test_delayed_extend_cannot_touch_the_new_owners_lease(stub: Stub) -> None:
    old = acquire(stub, ttl=0.05).grant
    wait_for(lambda: describe(stub).holder_count == 0, "the grant to expire", timeout=5)
    new = acquire(stub, ttl=30).grant
    for resume in (False, True):
        late = stub.Extend(pb.ExtendRequest(name="L", lock_token=old.lock_token, ttl=dur(300), resume=resume))
        assert late.outcome == pb.EXTEND_OUTCOME_EXPIRED
    [holder] = describe(stub).holders
    assert holder.fencing_token == new.fencing_token > old.fencing_token
    assert holder.expire_time.ToMilliseconds() == new.expire_time.ToMilliseconds()


def test_fencing_tokens_strictly_increase_across_grants(stub: Stub) -> None:
    seen = []
    for i in range(20):
        grant = acquire(stub, ttl=0.05 if i % 3 == 0 else 30).grant
        seen.append(grant.fencing_token)
        if i % 3:
            release(stub, "L", grant.lock_token)
        else:
            wait_for(lambda: describe(stub).holder_count == 0, "expiry", timeout=5)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert describe(stub).last_fencing_token == seen[-1]
    # Locks have independent tokens, but each one is also floored by the Redis clock.
    assert acquire(stub, "M").grant.fencing_token > 10**15


def test_describe_free_and_held(stub: Stub) -> None:
    free = describe(stub, "nothing")
    assert free.name == "nothing" and free.mode == pb.LOCK_MODE_UNSPECIFIED
    assert free.holder_count == 0 and free.queue_length == 0 and free.last_fencing_token == 0
    grants = [acquire(stub, mode=S, limit=5, owner=f"r{i}", ttl=10 + i).grant for i in range(3)]
    info = describe(stub)
    assert info.mode == S and info.holder_count == 3 and info.limit == 5
    assert [h.owner for h in info.holders] == ["r0", "r1", "r2"]
    assert [h.fencing_token for h in info.holders] == [g.fencing_token for g in grants]
    assert info.last_fencing_token == grants[-1].fencing_token


def test_concurrent_try_lock_has_exactly_one_winner(stub: Stub) -> None:
    barrier = threading.Barrier(16)
    results: list[bool] = []

    def contender() -> None:
        barrier.wait()
        results.append(acquire(stub, owner=threading.current_thread().name).acquired)

    threads = [threading.Thread(target=contender) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 15 + [True]
    assert describe(stub).holder_count == 1


def test_semaphore_never_exceeds_its_limit(stub: Stub) -> None:
    results = [acquire(stub, mode=S, limit=3, owner=f"p{i}") for i in range(5)]
    assert [r.acquired for r in results] == [True, True, True, False, False]
    assert len(results[3].holders) == 3
    release(stub, "L", results[0].grant.lock_token)
    assert acquire(stub, mode=S, limit=3).acquired
    assert not acquire(stub, mode=S, limit=3).acquired
    assert describe(stub).holder_count == 3


def test_readers_share_writers_exclude(stub: Stub) -> None:
    r1 = acquire(stub, mode=S).grant
    r2 = acquire(stub, mode=S).grant
    assert not acquire(stub, mode=X).acquired, "a writer waits for readers"
    release(stub, "L", r1.lock_token)
    release(stub, "L", r2.lock_token)
    w = acquire(stub, mode=X).grant
    assert not acquire(stub, mode=S).acquired, "readers wait for the writer"
    release(stub, "L", w.lock_token)
    assert acquire(stub, mode=S).acquired


DAY_MS = 86_400_000


def test_keys_share_one_slot_and_every_key_expires(stub: Stub, coord: CoordUnderTest) -> None:
    a = acquire(stub, ttl=30).grant
    waiter = stub.Acquire.future(pb.AcquireRequest(name="L", mode=X, ttl=dur(30), wait=dur(30)), timeout=60)
    wait_for(lambda: describe(stub).queue_length == 1, "the waiter to queue", timeout=10)
    assert release(stub, "L", a.lock_token) == pb.RELEASE_OUTCOME_RELEASED
    b = waiter.result().grant
    expiring = acquire(stub, "L2", ttl=0.05).grant
    wait_for(lambda: describe(stub, "L2").holder_count == 0, "expiry", timeout=5)
    stub.Extend(pb.ExtendRequest(name="L2", lock_token=expiring.lock_token, resume=True))
    stub.Extend(pb.ExtendRequest(name="L", lock_token=b.lock_token, ttl=dur(100)))
    released = acquire(stub, "L3").grant
    release(stub, "L3", released.lock_token)
    acquire(stub, "L4", ttl=2 * 86_400)  # a lease longer than the fence counter's minimum TTL
    with coord.redis() as r:
        keys = [k.decode() for k in r.scan_iter(match="coord:default:lock:*", count=1000)]
        fences = [k for k in keys if k.endswith(":fence")]
        assert len(fences) == 4 and any(k.endswith(":d") for k in keys)
        pttls = {key: r.pttl(key) for key in keys}
        slots = {r.cluster_keyslot(k) if coord.kind == "cluster" else 0 for k in keys if "{L}" in k}
    assert all(pttl > 0 for pttl in pttls.values()), pttls
    for fence in fences:
        # A day at least (a minute's slack for a slow run), and never less than the lock's other keys:
        # a resume compares a grant's fence with the counter, and Describe reports it.
        siblings = [pttl for key, pttl in pttls.items() if key.rsplit(":", 1)[0] == fence.rsplit(":", 1)[0]]
        assert pttls[fence] > DAY_MS - 60_000 and pttls[fence] >= max(siblings) - 1_000, pttls
    assert pttls["coord:default:lock:{L4}:fence"] > DAY_MS * 2
    assert len(slots) == 1


def test_tokens_keep_growing_after_the_fence_counter_expired(stub: Stub, coord: CoordUnderTest) -> None:
    """What the counter's expiry means: the next token comes from the Redis time floor alone."""
    tokens = []
    for _ in range(3):
        grant = acquire(stub).grant
        tokens.append(grant.fencing_token)
        release(stub, "L", grant.lock_token)
    with coord.redis() as r:
        assert r.delete("coord:default:lock:{L}:fence") == 1  # as if its TTL had run out
    assert describe(stub).last_fencing_token == 0
    after = acquire(stub).grant.fencing_token
    assert after > max(tokens)
    assert describe(stub).last_fencing_token == after


def test_lock_tokens_never_start_with_a_dash() -> None:
    # coordctl takes the token as an argument; one starting with "-" would read as an option.
    from coord_server.lock.store import new_lock_token

    tokens = {new_lock_token() for _ in range(5000)}
    assert len(tokens) == 5000 and not any(t.startswith("-") for t in tokens)
