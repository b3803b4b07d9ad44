"""Tenant isolation, proved through every RPC of every service, on single node and Cluster.

Tenants ``a`` and ``b`` do the same things with the same names, and nothing of one is visible to or
changeable by the other: A's writes are misses for B, B's lock on A's lock name is its own, B's rate
limit has its own budget (and no memory of A's denials), a session token of A's is simply invalid for
B, B's ``>`` subscription never receives A's events, listings list the caller's tenant only. After
each scenario, every Redis key (and Pub/Sub channel) is under the right ``coord:<tenant>:`` prefix.

The tenants are driven three ways (tenants.py): by API keys in ``COORD_AUTH_FILE`` (``auth``), by a
test interceptor binding each RPC to its tenant in one server process (``bound``), and by two servers
started with ``COORD_TENANT=a`` and ``=b`` on one Redis (``servers``). Names differ between tests:
a module's servers keep per-tenant state in memory (remembered denials) across tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import duration_pb2

from coord.cache.v1 import cache_pb2 as cache
from coord.collections.v1 import list_pb2 as ls
from coord.collections.v1 import map_pb2 as mp
from coord.collections.v1 import set_pb2 as st
from coord.collections.v1 import sorted_set_pb2 as zs
from coord.election.v1 import election_pb2 as el
from coord.events.v1 import events_pb2 as ev
from coord.lock.v1 import lock_pb2 as lk
from coord.ratelimit.v1 import ratelimit_pb2 as rl
from coord.session.v1 import session_pb2 as ss
from tests.conftest import wait_for
from tests.events.helpers import EARLIEST, LATEST, Consumer, Stream, subscribe
from tests.lock._util import HoldStream

from .tenants import (
    TENANTS,
    BoundCoordThread,
    Deployment,
    Tenant,
    auth_available,
    deploy,
    each_deployment,
    enforces_credentials,
)


def sec(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(round(seconds * 1000))
    return d


@pytest.fixture(scope="module", params=list(each_deployment()), ids=lambda p: f"{p[0]}-{p[1]}")
def deployment(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Deployment]:
    driver, kind = request.param
    if driver == "auth" and not auth_available():
        pytest.skip("this tree has no authentication layer (coord_server.auth) to enforce COORD_AUTH_FILE")
    backing = request.getfixturevalue(f"redis_{kind}")
    deployed = deploy(driver, kind, backing, workdir)
    try:
        if driver == "auth" and not enforces_credentials(deployed.servers[0].target):
            pytest.skip("the server answers calls without a credential: COORD_AUTH_FILE is not enforced yet")
        yield deployed
    finally:
        deployed.close()


@pytest.fixture
def pair(deployment: Deployment) -> Deployment:
    deployment.flush()
    # The Redis is shared with the rest of the suite, whose servers (tenant "default") may still hold
    # subscriptions of earlier tests (a hub lingering after its last watcher, a waiter being cleaned
    # up): only channels subscribed from now on are this scenario's.
    deployment.channels_before = frozenset(deployment.channels())
    return deployment


def assert_keys_in_tenants(pair: Deployment, *services: str) -> None:
    """Every key is ``coord:<a or b>:<one of services>:...``, and each tenant wrote some of each."""
    keys = pair.keys()
    allowed = tuple(f"coord:{t}:{s}:" for t in TENANTS for s in services)
    assert [k for k in keys if not k.startswith(allowed)] == []
    for tenant in pair.tenants:
        for service in services:
            assert any(k.startswith(f"{tenant.prefix}{service}:") for k in keys), (tenant.name, service)


def assert_channels_in_tenants(pair: Deployment) -> None:
    """Every channel subscribed since the scenario began is under ``coord:<a or b>:``, and the
    scenario subscribed some."""
    new = [c for c in pair.channels() if c.startswith("coord:") and c not in pair.channels_before]
    assert new, "the scenario subscribed no channel: nothing was checked"
    assert [c for c in new if not c.startswith(tuple(f"coord:{t}:" for t in TENANTS))] == []


# -- cache -------------------------------------------------------------------------------------------


def _get_streamed(tenant: Tenant, *keys: str) -> list[cache.Entry]:
    requests = [cache.GetStreamRequest(request_id=i, get=cache.GetRequest(key=k)) for i, k in enumerate(keys)]
    replies = sorted(tenant.cache.GetStream(iter(requests), timeout=30), key=lambda r: r.request_id)
    assert [r.WhichOneof("result") for r in replies] == ["get"] * len(keys)
    return [r.get.entry for r in replies]


def _set_streamed(tenant: Tenant, *requests: cache.SetRequest) -> list[cache.SetResponse]:
    messages = [cache.SetStreamRequest(request_id=i, set=r) for i, r in enumerate(requests)]
    replies = sorted(tenant.cache.SetStream(iter(messages), timeout=30), key=lambda r: r.request_id)
    assert [r.WhichOneof("result") for r in replies] == ["set"] * len(requests)
    return [r.set for r in replies]


def test_cache(pair: Deployment) -> None:
    a, b = pair.tenants
    stored = cache.WRITE_OUTCOME_STORED
    assert a.cache.Set(cache.SetRequest(key="user:1", value=b"A1", ttl=sec(60))).outcome == stored
    assert a.cache.Increment(cache.IncrementRequest(key="hits", delta=5, ttl=sec(60))).value == 5

    # Every read of B misses A's entries.
    assert not b.cache.Get(cache.GetRequest(key="user:1")).entry.found
    assert [e.found for e in b.cache.BatchGet(cache.BatchGetRequest(keys=["user:1", "hits"])).entries] == [
        False,
        False,
    ]
    assert [e.found for e in _get_streamed(b, "user:1", "hits")] == [False, False]
    assert not b.cache.Touch(cache.TouchRequest(key="user:1", ttl=sec(120))).found
    deleted = b.cache.Delete(cache.DeleteRequest(keys=["user:1", "hits"]))
    assert deleted.deleted_count == 0
    assert [r.outcome for r in deleted.results] == [cache.DELETE_OUTCOME_NOT_FOUND] * 2

    # B's writes under the same names are its own: "absent" for B, "present" only for A.
    absent = cache.IfAbsent()
    assert b.cache.Set(cache.SetRequest(key="user:1", value=b"B1", if_absent=absent)).outcome == stored
    assert (
        b.cache.Set(cache.SetRequest(key="user:2", value=b"B2", if_present=cache.IfPresent())).outcome
        == cache.WRITE_OUTCOME_NOT_FOUND
    )
    batch = b.cache.BatchSet(
        cache.BatchSetRequest(
            requests=[
                cache.SetRequest(key="user:2", value=b"B2", if_absent=cache.IfAbsent()),
                cache.SetRequest(key="user:3", value=b"B3", ttl=sec(60)),
            ]
        )
    )
    assert [r.outcome for r in batch.responses] == [stored, stored]
    incremented = b.cache.Increment(cache.IncrementRequest(key="hits", delta=1, ttl=sec(60)))
    assert (incremented.value, incremented.created) == (1, True)

    # B's streamed writes too: A's entry is not "present" for B, and B's write leaves A's as it was.
    assert a.cache.Set(cache.SetRequest(key="streamed", value=b"A", ttl=sec(60))).outcome == stored
    streamed = _set_streamed(
        b,
        cache.SetRequest(key="streamed", value=b"B?", ttl=sec(60), if_present=cache.IfPresent()),
        cache.SetRequest(key="user:1", value=b"B?", ttl=sec(60), if_absent=cache.IfAbsent()),
    )
    assert [r.outcome for r in streamed] == [
        cache.WRITE_OUTCOME_NOT_FOUND,
        cache.WRITE_OUTCOME_ALREADY_EXISTS,
    ]
    assert [
        r.outcome for r in _set_streamed(b, cache.SetRequest(key="streamed", value=b"B", ttl=sec(60)))
    ] == [stored]
    assert a.cache.Get(cache.GetRequest(key="streamed")).entry.value == b"A"
    assert b.cache.Get(cache.GetRequest(key="streamed")).entry.value == b"B"

    # A fence is the tenant's own: a token A used does not fence B's writes.
    assert (
        a.cache.Set(
            cache.SetRequest(key="fenced", value=b"A", fence=cache.Fence(lock_name="L", fencing_token=9))
        ).outcome
        == stored
    )
    assert (
        b.cache.Set(
            cache.SetRequest(key="fenced", value=b"B", fence=cache.Fence(lock_name="L", fencing_token=1))
        ).outcome
        == stored
    )

    # A key spelled like another tenant's Redis key is only a name in the caller's tenant.
    a.cache.Set(cache.SetRequest(key="coord:b:cache:{user:2}", value=b"forged", ttl=sec(60)))
    a.cache.Set(cache.SetRequest(key="{user:2}", value=b"forged", ttl=sec(60)))

    # Each tenant reads its own values, through every read RPC.
    assert a.cache.Get(cache.GetRequest(key="user:1")).entry.value == b"A1"
    assert b.cache.Get(cache.GetRequest(key="user:1")).entry.value == b"B1"
    assert [e.value for e in b.cache.BatchGet(cache.BatchGetRequest(keys=["user:2", "fenced"])).entries] == [
        b"B2",
        b"B",
    ]
    assert [(e.found, e.value) for e in _get_streamed(a, "user:2", "user:3", "fenced", "hits")] == [
        (False, b""),
        (False, b""),
        (True, b"A"),
        (True, b"5"),
    ]
    assert a.cache.Increment(cache.IncrementRequest(key="hits", delta=1, ttl=sec(60))).value == 6

    # B's Delete and Touch change B's entries only.
    a_version = a.cache.Get(cache.GetRequest(key="user:1")).entry.version
    assert b.cache.Delete(cache.DeleteRequest(keys=["user:1"], if_version=a_version)).results[0].outcome in (
        cache.DELETE_OUTCOME_DELETED,  # B's version happens to be A's (versions are Redis times)
        cache.DELETE_OUTCOME_VERSION_MISMATCH,
    )
    assert b.cache.Delete(cache.DeleteRequest(keys=["user:1", "user:3"])).results[1].outcome == (
        cache.DELETE_OUTCOME_DELETED
    )
    assert not b.cache.Get(cache.GetRequest(key="user:1")).entry.found
    assert a.cache.Get(cache.GetRequest(key="user:1")).entry.version == a_version
    assert b.cache.Touch(cache.TouchRequest(key="user:2", ttl=sec(300))).found
    assert not a.cache.Touch(cache.TouchRequest(key="user:2", ttl=sec(300))).found
    assert_keys_in_tenants(pair, "cache")

    if pair.driver == "bound":
        # A call the test binding leaves unbound is the server's default tenant's, apart from both.
        anonymous = Tenant("default", pair.servers[0].target, ())
        try:
            assert not anonymous.cache.Get(cache.GetRequest(key="user:1")).entry.found
            anonymous.cache.Set(cache.SetRequest(key="user:1", value=b"D", ttl=sec(60)))
            assert a.cache.Get(cache.GetRequest(key="user:1")).entry.value == b"A1"
        finally:
            anonymous.close()
        assert {key.split(":", 2)[1] for key in pair.keys()} == {"a", "b", "default"}  # noqa: SIM118


# -- lock --------------------------------------------------------------------------------------------


def _acquire(
    tenant: Tenant, name: str, owner: str, *, wait: float = 0, ttl: float = 30
) -> lk.AcquireResponse:
    request = lk.AcquireRequest(
        name=name, mode=lk.LOCK_MODE_EXCLUSIVE, ttl=sec(ttl), wait=sec(wait), owner=owner
    )
    return tenant.lock.Acquire(request, timeout=wait + 30)


def _owners(tenant: Tenant, name: str) -> list[str]:
    return [h.owner for h in tenant.lock.Describe(lk.DescribeRequest(name=name)).holders]


def test_lock(pair: Deployment) -> None:
    a, b = pair.tenants
    held_a = _acquire(a, "job", "A")
    assert held_a.acquired
    # B's lock of the same name is free (its fence counter is B's own key: see the key check).
    held_b = _acquire(b, "job", "B")
    assert held_b.acquired
    assert (_owners(a, "job"), _owners(b, "job")) == (["A"], ["B"])

    # B cannot extend or release A's grant, even with A's token.
    a_token, b_token = held_a.grant.lock_token, held_b.grant.lock_token
    extended = b.lock.Extend(lk.ExtendRequest(name="job", lock_token=a_token, ttl=sec(60)))
    assert extended.outcome == lk.EXTEND_OUTCOME_HELD_BY_OTHER
    released = b.lock.Release(lk.ReleaseRequest(name="job", lock_token=a_token))
    assert released.outcome == lk.RELEASE_OUTCOME_HELD_BY_OTHER
    assert b.lock.Release(lk.ReleaseRequest(name="job", lock_token=b_token)).outcome == (
        lk.RELEASE_OUTCOME_RELEASED
    )
    assert b.lock.Release(lk.ReleaseRequest(name="job", lock_token=a_token)).outcome == (
        lk.RELEASE_OUTCOME_NOT_HELD
    )
    assert _owners(a, "job") == ["A"]
    assert a.lock.Extend(lk.ExtendRequest(name="job", lock_token=a_token, ttl=sec(60))).outcome == (
        lk.EXTEND_OUTCOME_EXTENDED
    )

    # Waiters queue per tenant: each tenant's waiter is granted by its own tenant's release only.
    again_b = _acquire(b, "job", "B")
    assert again_b.acquired
    with ThreadPoolExecutor(2) as pool:
        waiting: dict[str, Future[lk.AcquireResponse]] = {
            t.name: pool.submit(_acquire, t, "job", t.name.upper() + "2", wait=60) for t in (a, b)
        }
        for tenant in (a, b):
            wait_for(
                lambda t=tenant: t.lock.Describe(lk.DescribeRequest(name="job")).queue_length == 1,
                f"{tenant.name}'s waiter",
            )
        assert_channels_in_tenants(pair)
        assert b.lock.Release(lk.ReleaseRequest(name="job", lock_token=again_b.grant.lock_token)).outcome == (
            lk.RELEASE_OUTCOME_RELEASED
        )
        granted_b = waiting["b"].result(30)
        assert granted_b.acquired and granted_b.grant.fencing_token > again_b.grant.fencing_token
        assert not waiting["a"].done()
        assert a.lock.Describe(lk.DescribeRequest(name="job")).queue_length == 1
        assert a.lock.Release(lk.ReleaseRequest(name="job", lock_token=a_token)).outcome == (
            lk.RELEASE_OUTCOME_RELEASED
        )
        granted_a = waiting["a"].result(30)
        assert granted_a.acquired and granted_a.grant.fencing_token > held_a.grant.fencing_token
    assert (_owners(a, "job"), _owners(b, "job")) == (["A2"], ["B2"])

    # Hold: B's stream on the name A holds is granted at once; each release ends its own grant only.
    holds = {t.name: HoldStream(t.lock, timeout=60) for t in (a, b)}
    for name, hold in holds.items():
        hold.acquire("held", mode=lk.LOCK_MODE_EXCLUSIVE, ttl=sec(30), owner=name.upper())
        assert hold.next().WhichOneof("kind") == "acquired"
    assert (_owners(a, "held"), _owners(b, "held")) == (["A"], ["B"])
    holds["b"].heartbeat()
    assert holds["b"].next().WhichOneof("kind") == "renewed"
    holds["b"].send(lk.HoldRequest(release=lk.HoldRelease()))
    assert holds["b"].next().released.outcome == lk.RELEASE_OUTCOME_RELEASED
    assert (_owners(a, "held"), _owners(b, "held")) == (["A"], [])
    holds["a"].send(lk.HoldRequest(release=lk.HoldRelease()))
    assert holds["a"].next().released.outcome == lk.RELEASE_OUTCOME_RELEASED
    for hold in holds.values():
        hold.close()
    assert_keys_in_tenants(pair, "lock")


# -- rate limit --------------------------------------------------------------------------------------

RULE = rl.Rule(algorithm=rl.ALGORITHM_FIXED_WINDOW, limit=2, period=sec(3600))


def _check_request(key: str, **kw: Any) -> rl.CheckRequest:
    return rl.CheckRequest(descriptors=[rl.Descriptor(key=key, rule=RULE)], **kw)


def _check(tenant: Tenant, key: str) -> rl.CheckResponse:
    return tenant.ratelimit.Check(_check_request(key))


def _check_batch(tenant: Tenant, key: str) -> rl.CheckResponse:
    results = tenant.ratelimit.CheckBatch(rl.CheckBatchRequest(checks=[_check_request(key)])).results
    assert [r.WhichOneof("result") for r in results] == ["check"]
    return results[0].check


def _check_streamed(tenant: Tenant, key: str) -> rl.CheckResponse:
    replies = list(
        tenant.ratelimit.CheckStream(
            iter([rl.CheckStreamRequest(request_id=7, check=_check_request(key))]), timeout=30
        )
    )
    assert [(r.request_id, r.WhichOneof("result")) for r in replies] == [(7, "check")]
    return replies[0].check


def _check_batch_streamed(tenant: Tenant, key: str) -> rl.CheckResponse:
    request = rl.CheckBatchStreamRequest(batch_id=3, checks=[_check_request(key)])
    replies = list(tenant.ratelimit.CheckBatchStream(iter([request]), timeout=30))
    assert [(r.batch_id, [x.WhichOneof("result") for x in r.results]) for r in replies] == [(3, ["check"])]
    return replies[0].results[0].check


@pytest.mark.parametrize("check", [_check, _check_batch, _check_streamed, _check_batch_streamed])
def test_ratelimit_budgets(pair: Deployment, check: Any) -> None:
    a, b = pair.tenants
    key = f"api:{check.__name__}"
    # A spends its budget and is denied (a denial the server remembers: the deny cache is on).
    assert [(r.allowed, r.remaining) for r in (check(a, key) for _ in range(3))] == [
        (True, 1),
        (True, 0),
        (False, 0),
    ]
    assert not check(a, key).allowed
    # B has its own budget for the same key and rule, untouched by A's spending and A's denial.
    assert [(r.allowed, r.remaining) for r in (check(b, key) for _ in range(3))] == [
        (True, 1),
        (True, 0),
        (False, 0),
    ]
    assert_keys_in_tenants(pair, "ratelimit")


def test_ratelimit_scopes_and_reset(pair: Deployment) -> None:
    a, b = pair.tenants
    scoped = rl.CheckRequest(
        scope="org:1",
        descriptors=[rl.Descriptor(key="org:1:read", rule=RULE), rl.Descriptor(key="org:1:write", rule=RULE)],
        cost=2,
    )
    assert a.ratelimit.Check(scoped).allowed
    assert not a.ratelimit.Check(scoped).allowed
    assert b.ratelimit.Check(scoped).allowed  # one atomic script over B's keys of the scope
    assert [_check(a, "reset-me").allowed for _ in range(3)] == [True, True, False]

    # B's Reset of A's key finds nothing of B's and leaves A's state alone.
    assert not b.ratelimit.Reset(rl.ResetRequest(key="reset-me")).existed
    assert not _check(a, "reset-me").allowed
    # B's Reset of the scope clears B's state only: B may spend again, A stays denied.
    assert b.ratelimit.Reset(rl.ResetRequest(key="org:1:read", scope="org:1")).existed
    assert b.ratelimit.Reset(rl.ResetRequest(key="org:1:write", scope="org:1")).existed
    assert b.ratelimit.Check(scoped).allowed
    assert not a.ratelimit.Check(scoped).allowed
    # A's own Reset frees A's key (and forgets A's remembered denial).
    assert a.ratelimit.Reset(rl.ResetRequest(key="reset-me")).existed
    assert _check(a, "reset-me").allowed
    assert_keys_in_tenants(pair, "ratelimit")


# -- session -----------------------------------------------------------------------------------------


def _create(tenant: Tenant, role: bytes) -> ss.CreateResponse:
    return tenant.session.Create(
        ss.CreateRequest(
            subject="alice",
            attributes={"role": role},
            max_sessions=1,
            limit_policy=ss.LIMIT_POLICY_REJECT,
            idle_timeout=sec(600),
            absolute_timeout=sec(3600),
        )
    )


def _validate(tenant: Tenant, token: str) -> ss.ValidateResponse:
    return tenant.session.Validate(ss.ValidateRequest(token=token, attribute_names=["*"]))


def _session_ids(tenant: Tenant, subject: str = "alice") -> list[str]:
    listed = tenant.session.ListSessions(ss.ListSessionsRequest(subject=subject))
    return [s.session_id for s in listed.sessions]


def test_session(pair: Deployment) -> None:
    a, b = pair.tenants
    created_a = _create(a, b"admin")
    # A's session does not count against B's limit for the same subject.
    created_b = _create(b, b"user")
    token_a, id_a = created_a.token, created_a.session.session_id
    token_b, id_b = created_b.token, created_b.session.session_id

    # A token of A's presented to B is simply invalid, for every call that takes one.
    unknown = ss.INVALID_REASON_UNKNOWN
    assert _validate(b, token_a).invalid.reason == unknown
    updated = b.session.Update(ss.UpdateRequest(token=token_a, set={"role": b"root"}))
    assert updated.invalid.reason == unknown
    rotated = b.session.Rotate(ss.RotateRequest(token=token_a, grace=sec(0)))
    assert rotated.invalid.reason == unknown
    assert not b.session.Revoke(ss.RevokeRequest(token=token_a)).revoked
    assert not b.session.Revoke(ss.RevokeRequest(session_id=id_a)).revoked
    assert _validate(a, token_a).session.attributes == {"role": b"admin"}
    assert _validate(a, token_b).invalid.reason == unknown

    # Listings and bulk revocation stay inside the tenant.
    assert (_session_ids(a), _session_ids(b)) == ([id_a], [id_b])
    assert b.session.RevokeAll(ss.RevokeAllRequest(subject="alice")).revoked_count == 1
    assert (_session_ids(a), _session_ids(b)) == ([id_a], [])
    assert _validate(a, token_a).WhichOneof("result") == "session"

    # A's own calls still work on A's session, and B still cannot reach the rotated token.
    assert a.session.Update(ss.UpdateRequest(token=token_a, set={"seen": b"1"})).WhichOneof("result") == (
        "updated"
    )
    new_a = a.session.Rotate(ss.RotateRequest(token=token_a, grace=sec(0))).rotated.token
    assert _validate(b, new_a).invalid.reason == unknown
    assert _validate(a, new_a).session.attributes == {"role": b"admin", "seen": b"1"}
    assert a.session.Revoke(ss.RevokeRequest(token=new_a)).revoked
    assert_keys_in_tenants(pair, "session")


# -- events ------------------------------------------------------------------------------------------


def _publish(tenant: Tenant, topic: str, data: bytes, **kw: Any) -> ev.PublishResponse:
    return tenant.events.Publish(ev.PublishRequest(topic=topic, data=data, **kw))


def _topics(tenant: Tenant, pattern: str = "") -> list[str]:
    return list(tenant.events.ListTopics(ev.ListTopicsRequest(pattern=pattern)).topics)


def _frames_until(stream: Stream, data: bytes, progress_after: int = 0) -> list[ev.SubscribeResponse]:
    """Frames up to the event carrying ``data``, then up to ``progress_after`` more Progress frames."""
    frames: list[ev.SubscribeResponse] = []
    end = time.monotonic() + 20
    while data not in _seen(frames)[0]:
        frames.append(stream.next(max(0.01, end - time.monotonic())))
    progress = 0
    while progress < progress_after:
        frame = stream.next(max(0.01, end - time.monotonic()))
        frames.append(frame)
        progress += frame.WhichOneof("frame") == "progress"
    return frames


def _seen(frames: list[ev.SubscribeResponse]) -> tuple[list[bytes], set[str]]:
    """The event payloads of ``frames``, and every topic they name (events, starts, cursors, gaps)."""
    data: list[bytes] = []
    topics: set[str] = set()
    for frame in frames:
        kind = frame.WhichOneof("frame")
        if kind == "events":
            data += [e.data for e in frame.events.events]
            topics |= {e.topic for e in frame.events.events}
        elif kind == "subscribed":
            topics |= {c.topic for c in frame.subscribed.starts}
        elif kind == "progress":
            topics |= {c.topic for c in frame.progress.cursors}
        elif kind == "gap":
            topics.add(frame.gap.topic)
    return data, topics


def test_events_topics(pair: Deployment) -> None:
    a, b = pair.tenants
    _publish(a, "orders.created", b"A1", dedup_id="d1")
    published = a.events.BatchPublish(
        ev.BatchPublishRequest(
            requests=[
                ev.PublishRequest(topic="orders.created", data=b"A2"),
                ev.PublishRequest(topic="audit.a-only", data=b"A3"),
            ]
        )
    )
    assert len(published.responses) == 2
    # B sees none of A's topics: not by name, not in any listing.
    info = b.events.GetTopic(ev.GetTopicRequest(topic="orders.created")).topic
    assert (info.exists, info.length) == (False, 0)
    assert _topics(b) == [] and _topics(b, ">") == [] and _topics(b, "*.created") == []
    # A's dedup id is not B's: B's first publish with it is no duplicate.
    assert not _publish(b, "orders.created", b"B1", dedup_id="d1").duplicate
    assert _publish(a, "orders.created", b"A1 again", dedup_id="d1").duplicate
    assert (_topics(a), _topics(b)) == (["audit.a-only", "orders.created"], ["orders.created"])
    assert (_topics(a, "*.created"), _topics(b, "audit.>")) == (["orders.created"], [])
    assert b.events.GetTopic(ev.GetTopicRequest(topic="orders.created")).topic.length == 1
    assert a.events.GetTopic(ev.GetTopicRequest(topic="orders.created")).topic.length == 2

    # B's subscription to the shared name reads B's stream only, from its start and live.
    stream = subscribe(b.events, "orders.created", start=EARLIEST, heartbeat_interval=sec(0.1))
    try:
        first, topics = _seen(_frames_until(stream, b"B1"))
        assert first == [b"B1"] and topics == {"orders.created"}
        counted = ev.GetTopicRequest(topic="orders.created")
        wait_for(lambda: b.events.GetTopic(counted).topic.local_subscribers == 1, "B's subscriber counted")
        mine = a.events.GetTopic(ev.GetTopicRequest(topic="orders.created")).topic
        assert (mine.local_subscribers, mine.local_reader) == (0, False)
        _publish(a, "orders.created", b"A4")
        _publish(b, "orders.created", b"B2")
        later, topics = _seen(_frames_until(stream, b"B2", progress_after=2))
        assert later == [b"B2"] and topics == {"orders.created"}
    finally:
        stream.cancel()
    assert_keys_in_tenants(pair, "events")


def test_events_patterns(pair: Deployment) -> None:
    a, b = pair.tenants
    _publish(a, "orders.created", b"A1")
    _publish(a, "audit.a-only", b"A2")
    _publish(b, "orders.created", b"B1")
    everything = subscribe(b.events, ">", start=EARLIEST, heartbeat_interval=sec(0.1))
    one_token = subscribe(b.events, "*.late", start=LATEST, heartbeat_interval=sec(0.1))
    theirs = subscribe(a.events, "orders.*", start=EARLIEST, heartbeat_interval=sec(0.1))
    try:
        opened = everything.next_of("subscribed")
        assert [c.topic for c in opened.starts] == ["orders.created"]
        assert [c.topic for c in one_token.next_of("subscribed").starts] == []
        # New topics of A, published while B's pattern subscriptions are open, then one of B's: each
        # B stream gets B's events only, and goes on without A's for several registry polls.
        _publish(a, "a.late", b"A3")
        _publish(a, "orders.created", b"A4")
        _publish(b, "b.late", b"B2")
        frames = _frames_until(everything, b"B2", progress_after=5)
        data, topics = _seen([ev.SubscribeResponse(subscribed=opened), *frames])
        assert data == [b"B1", b"B2"]
        assert topics == {"orders.created", "b.late"}
        data, topics = _seen(_frames_until(one_token, b"B2", progress_after=5))
        assert data == [b"B2"] and topics == {"b.late"}
        # A's pattern subscription likewise reads A's topics only.
        data, topics = _seen(_frames_until(theirs, b"A4", progress_after=2))
        assert data == [b"A1", b"A4"] and topics == {"orders.created"}
    finally:
        for stream in (everything, one_token, theirs):
            stream.cancel()
    assert_keys_in_tenants(pair, "events")


def _pending(tenant: Tenant, topic: str, group: str) -> int:
    groups = tenant.events.GetTopic(ev.GetTopicRequest(topic=topic)).topic.groups
    return next(g.pending for g in groups if g.name == group)


def test_events_consumer_groups(pair: Deployment) -> None:
    a, b = pair.tenants
    ids_a = [_publish(a, "jobs", d).id for d in (b"A1", b"A2")]
    id_b = _publish(b, "jobs", b"B1").id
    worker_a = Consumer(a.events, "jobs", "workers", initial_credits=10)
    worker_b = Consumer(b.events, "jobs", "workers", initial_credits=10)
    try:
        # The same group name is a new group in each tenant, fed by that tenant's stream only.
        assert worker_a.started.group_created and worker_b.started.group_created
        assert [e.data for e in worker_a.events(2)] == [b"A1", b"A2"]
        assert [e.data for e in worker_b.events(1)] == [b"B1"]
        wait_for(lambda: _pending(a, "jobs", "workers") == 2, "A's deliveries pending")
        # B's acks, nacks and extensions of A's ids change nothing of A's.
        worker_b.extend(*ids_a)
        worker_b.nack(*ids_a)
        worker_b.ack(*ids_a)
        worker_b.ack(id_b)  # handled after the others: once B has nothing pending, they all ran
        wait_for(lambda: _pending(b, "jobs", "workers") == 0, "B's ack")
        assert _pending(a, "jobs", "workers") == 2
        mine = a.events.GetTopic(ev.GetTopicRequest(topic="jobs")).topic
        assert [(g.name, g.consumers) for g in mine.groups] == [("workers", 1)]
        worker_a.extend(*ids_a)
        worker_a.ack(*ids_a)
        wait_for(lambda: _pending(a, "jobs", "workers") == 0, "A's acks")
    finally:
        worker_a.close()
        worker_b.close()
    groups_b = b.events.GetTopic(ev.GetTopicRequest(topic="jobs")).topic.groups
    assert [g.name for g in groups_b] == ["workers"]
    assert_keys_in_tenants(pair, "events")


def test_events_volatile(pair: Deployment) -> None:
    a, b = pair.tenants
    streams = {
        t.name: subscribe(t.events, "presence", volatile=True, heartbeat_interval=sec(0.1)) for t in (a, b)
    }
    try:
        for stream in streams.values():
            stream.next_of("subscribed")
        assert_channels_in_tenants(pair)
        # Each tenant's volatile event reaches its own subscriber only, numbered in its own sequence.
        sent_a = _publish(a, "presence", b"A1", volatile=True)
        sent_b = _publish(b, "presence", b"B1", volatile=True)
        assert (sent_a.sequence, sent_a.receivers) == (1, 1)
        assert (sent_b.sequence, sent_b.receivers) == (1, 1)
        _publish(a, "presence", b"A2", volatile=True)
        _publish(b, "presence", b"B2", volatile=True)
        for name, stream in streams.items():
            mark = name.upper().encode()
            frames = _frames_until(stream, mark + b"2", progress_after=2)
            assert [f for f in frames if f.WhichOneof("frame") == "gap"] == []  # no number is missing
            data, topics = _seen(frames)
            assert data == [mark + b"1", mark + b"2"] and topics == {"presence"}
    finally:
        for stream in streams.values():
            stream.cancel()
    assert_keys_in_tenants(pair, "events")


# -- shutdown: every tenant's background work stops ------------------------------------------------


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_shutdown_stops_every_tenants_background_work(
    kind: str, request: pytest.FixtureRequest, workdir: Path
) -> None:
    """One server with lock waiters, pattern subscriptions, feeds and volatile listeners for two
    tenants (one of each per tenant) leaves no task behind once it has stopped."""
    backing = request.getfixturevalue(f"redis_{kind}")
    deployed = deploy("bound", kind, backing, workdir)
    deployed.flush()
    server = deployed.servers[0]
    assert isinstance(server, BoundCoordThread)
    streams: list[Stream] = []
    pool = ThreadPoolExecutor(2)
    try:
        for tenant in deployed.tenants:
            assert _acquire(tenant, "busy", "holder").acquired
            pool.submit(_acquire, tenant, "busy", "waiter", wait=60)
            _publish(tenant, f"topic.{tenant.name}", b"x")  # read by a feed from the opening on
            streams.append(subscribe(tenant.events, ">", start=LATEST))
            streams.append(subscribe(tenant.events, "live", volatile=True))
        for stream in streams:
            stream.next_of("subscribed")
        for tenant in deployed.tenants:
            wait_for(
                lambda t=tenant: t.lock.Describe(lk.DescribeRequest(name="busy")).queue_length == 1,
                f"{tenant.name}'s waiter",
            )
        running = server.tasks()
        # One of each per tenant: the state is per tenant, and so is its background work.
        for task in ("Waiters._run", "Hub._poll_directory", "VolatileHub._run"):
            assert running.count(task) == len(TENANTS), (task, running)
        # The live topic readers are the process's, shared by the tenants (events/readers.py).
        assert running.count("Reader._run") >= 1, running
    finally:
        server.stop()  # with every stream and wait still open: the shutdown has to end them
        deployed.close()
        for stream in streams:
            stream.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    assert server.leftover == [], repr(server.leftover)


# -- collections ------------------------------------------------------------------------------------


def test_collections(pair: Deployment) -> None:
    """The same names in two tenants are two collections: maps, lists (a waiting Pop included), sets
    and sorted sets; no kind check crosses tenants either."""
    a, b = pair.tenants
    a.map.Set(mp.MapServiceSetRequest(name="profile", fields=[mp.MapField(field="name", value=b"A")]))
    a.list.Push(ls.ListServicePushRequest(name="jobs", values=[b"a1", b"a2"]))
    a.set.Add(st.SetServiceAddRequest(name="tags", members=["x"]))
    a.sorted_set.Put(
        zs.SortedSetServicePutRequest(name="board", members=[zs.ScoredMember(member="ada", score=3)])
    )

    assert not b.map.Get(mp.MapServiceGetRequest(name="profile", fields=["name"])).values[0].found
    assert b.list.Pop(ls.ListServicePopRequest(name="jobs", wait=sec(0.2))).values == []
    assert not b.set.Contains(st.SetServiceContainsRequest(name="tags", members=["x"])).contains[0]
    assert (
        not b.sorted_set.GetRank(zs.SortedSetServiceGetRankRequest(name="board", members=["ada"]))
        .ranks[0]
        .found
    )
    # B may use A's names for any kind: its names are its own.
    b.map.Set(mp.MapServiceSetRequest(name="jobs", fields=[mp.MapField(field="k", value=b"B")]))
    b.list.Push(ls.ListServicePushRequest(name="profile", values=[b"b1"]))
    assert b.map.Length(mp.MapServiceLengthRequest(name="jobs")).collection.length == 1

    # A's waiting Pop is woken by A's push, never by B's.
    popped: list[list[bytes]] = []
    waiter = threading.Thread(
        target=lambda: popped.append(
            list(a.list.Pop(ls.ListServicePopRequest(name="queue", wait=sec(20)), timeout=30).values)
        )
    )
    waiter.start()
    queued = "coord:a:coll:{queue}:q"
    wait_for(lambda: queued in pair.keys(), "A's Pop to wait")  # noqa: SIM118 (a list of key names)
    b.list.Push(ls.ListServicePushRequest(name="queue", values=[b"from-b"]))
    a.list.Push(ls.ListServicePushRequest(name="queue", values=[b"from-a"]))
    waiter.join(30)
    assert popped == [[b"from-a"]]
    assert b.list.Range(ls.ListServiceRangeRequest(name="queue", start=0, stop=-1)).values == [b"from-b"]

    assert a.map.Get(mp.MapServiceGetRequest(name="profile", fields=["name"])).values[0].value == b"A"
    assert [v for v in a.list.Range(ls.ListServiceRangeRequest(name="jobs", start=0, stop=-1)).values] == [
        b"a1",
        b"a2",
    ]
    assert_keys_in_tenants(pair, "coll")


# -- the cache's leases, tags and invalidations, and elections -------------------------------------


def test_cache_leases_tags_and_invalidations(pair: Deployment) -> None:
    """A's fill lease, tags and invalidations are A's: B gets its own lease on the same key, B's
    InvalidateTags leaves A's tagged entry a hit, and B's watcher never hears of A's writes."""
    a, b = pair.tenants
    lease_a = a.cache.GetOrLease(cache.GetOrLeaseRequest(key="report", lease_ttl=sec(30)))
    lease_b = b.cache.GetOrLease(cache.GetOrLeaseRequest(key="report", lease_ttl=sec(30)))
    assert lease_a.lease_token and lease_b.lease_token and lease_a.lease_token != lease_b.lease_token
    stored = cache.WRITE_OUTCOME_STORED
    filled = cache.SetRequest(key="report", value=b"A", ttl=sec(60), lease_token=lease_b.lease_token)
    assert a.cache.Set(filled).outcome == cache.WRITE_OUTCOME_LEASE_LOST  # B's token is no lease of A's
    assert a.cache.Set(cache.SetRequest(key="t", value=b"A", ttl=sec(60), tags=["team"])).outcome == stored
    b.cache.InvalidateTags(cache.InvalidateTagsRequest(tags=["team"]))
    assert a.cache.Get(cache.GetRequest(key="t")).entry.value == b"A"

    request = cache.WatchInvalidationsRequest(prefixes=[""], values=True, batch=True)
    watch = b.cache.WatchInvalidations(request, timeout=30)
    try:
        assert next(watch).HasField("ready")
        assert_channels_in_tenants(pair)
        a.cache.Set(cache.SetRequest(key="seen-by-a-only", value=b"A", ttl=sec(60)))
        b.cache.Set(cache.SetRequest(key="b-key", value=b"B", ttl=sec(60)))
        first = next(watch)  # A's write, published on A's channel, never reaches B's stream
        assert first.invalidation.key == "b-key", first
        assert first.invalidation.entry.value == b"B"  # the entry pushed is B's own
    finally:
        watch.cancel()
    assert_keys_in_tenants(pair, "cache")


def test_cache_prefix_invalidation(pair: Deployment) -> None:
    """B's InvalidatePrefix leaves A's entries under the same prefix hits; A's own makes them misses."""
    a, b = pair.tenants
    stored = cache.WRITE_OUTCOME_STORED
    for tenant in (a, b):
        request = cache.SetRequest(key="user:42:name", value=tenant.name.encode(), ttl=sec(60))
        assert tenant.cache.Set(request).outcome == stored
    b.cache.InvalidatePrefix(cache.InvalidatePrefixRequest(prefix="user:42:"))
    assert a.cache.Get(cache.GetRequest(key="user:42:name")).entry.found
    assert not b.cache.Get(cache.GetRequest(key="user:42:name")).entry.found
    a.cache.InvalidatePrefix(cache.InvalidatePrefixRequest(prefix="user:42:"))
    assert not a.cache.Get(cache.GetRequest(key="user:42:name")).entry.found
    assert_keys_in_tenants(pair, "cache")


def test_elections(pair: Deployment) -> None:
    """A's leader is A's: B's election of the same name has nobody leading, and B is elected in it."""
    a, b = pair.tenants
    done = threading.Event()

    def elected(tenant: Tenant) -> Any:
        join = el.CampaignRequest(
            join=el.CampaignJoin(name="scheduler", value=tenant.name.encode(), ttl=sec(30))
        )

        def requests() -> Iterator[el.CampaignRequest]:
            yield join
            done.wait(30)  # the request side stays open: a half-close would end the campaign

        replies = tenant.election.Campaign(requests(), timeout=30)
        return replies, next(replies)

    stream_a, first_a = elected(a)
    try:
        assert first_a.HasField("elected")
        assert not b.election.Leader(el.LeaderRequest(name="scheduler")).HasField("leader")
        stream_b, first_b = elected(b)
        try:
            assert first_b.HasField("elected")  # not queued behind A
            assert b.election.Leader(el.LeaderRequest(name="scheduler")).leader.value == b.name.encode()
            assert a.election.Leader(el.LeaderRequest(name="scheduler")).leader.value == a.name.encode()
        finally:
            stream_b.cancel()
    finally:
        stream_a.cancel()
        done.set()
    assert_keys_in_tenants(pair, "election")
