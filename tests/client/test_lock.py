"""The Python client's lock API (sync and async) and ``coordctl lock``, against a real Coord.

Where behaviour depends on Redis (grants, Hold streams, losses) the tests run on single-node Redis
and on Redis Cluster; argument handling and the CLI run on single-node Redis only.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from coord_client import AsyncClient, Client, InvalidArgument
from coord_client.lock import (
    AsyncLease,
    ExtendOutcome,
    Lease,
    LockLost,
    LockNotAcquired,
    Mode,
    ReleaseOutcome,
)
from coord_server.lock.keys import FENCE_SUFFIX, LockKeys

from ..conftest import CoordUnderTest, wait_for


@pytest.fixture
def client(coord: CoordUnderTest) -> Iterator[Client]:
    with Client(coord.target, timeout=10) as c:
        yield c


@pytest.fixture
def client1(coord_single: CoordUnderTest) -> Iterator[Client]:
    with Client(coord_single.target, timeout=10) as c:
        yield c


def delete_grants(coord: CoordUnderTest, name: str) -> None:
    """Remove a lock's state from Redis behind the server's back (the fence counter stays)."""
    keys = [k for k in LockKeys(coord.settings.tenant).all(name) if not k.endswith(FENCE_SUFFIX)]
    with coord.redis() as r:
        assert r.delete(*keys) >= 1


# ---------------------------------------------------------------- one method per RPC, sync


def test_acquire_describe_extend_release(client: Client) -> None:
    first = client.lock.acquire("jobs", 30, owner="host-a")
    assert first and first.acquired and first.grant is not None
    assert first.lock_token and first.fencing_token > 0 and first.expire_time is not None
    assert first.grant.mode is Mode.EXCLUSIVE and 29 < first.grant.valid_for <= 30
    assert 28 < first.grant.remaining() <= 30
    assert "lock_token" not in repr(first.grant)

    info = client.lock.describe("jobs")
    assert info.held and info.mode is Mode.EXCLUSIVE and info.holder_count == 1
    assert info.holders[0].owner == "host-a" and info.holders[0].fencing_token == first.fencing_token
    assert info.last_fencing_token == first.fencing_token and info.queue_length == 0

    busy = client.lock.acquire("jobs", 30)
    assert not busy and busy.grant is None and busy.lock_token == "" and busy.fencing_token == 0
    assert busy.queue_position == 0 and [h.owner for h in busy.holders] == ["host-a"]

    extended = client.lock.extend("jobs", first.lock_token, 120)
    assert extended and extended.outcome is ExtendOutcome.EXTENDED
    assert extended.fencing_token == first.fencing_token and 119 < extended.valid_for <= 120
    assert not client.lock.extend("jobs", "not-a-real-token", 10)

    assert client.lock.release("jobs", "not-a-real-token").outcome is ReleaseOutcome.HELD_BY_OTHER
    released = client.lock.release("jobs", first.lock_token)
    assert released and released.outcome is ReleaseOutcome.RELEASED
    assert client.lock.release("jobs", first.lock_token).released  # idempotent
    assert client.lock.extend("jobs", first.lock_token).outcome is ExtendOutcome.RELEASED
    assert not client.lock.describe("jobs").held
    assert client.lock.acquire("jobs").fencing_token > first.fencing_token


def test_wait_in_queue_then_acquire_and_wait_that_runs_out(client1: Client) -> None:
    holder = client1.lock.acquire("L", 60)
    missed = client1.lock.acquire("L", 60, wait=0.2)
    assert not missed and missed.queue_position == 1

    results: list[object] = []
    waiter = threading.Thread(target=lambda: results.append(client1.lock.acquire("L", 60, wait=30)))
    waiter.start()
    wait_for(lambda: client1.lock.describe("L").queue_length == 1, "the waiter to queue")
    client1.lock.release("L", holder.lock_token)
    waiter.join(30)
    [granted] = results
    assert granted and granted.fencing_token > holder.fencing_token  # type: ignore[attr-defined]


def test_resume_an_expired_grant(client1: Client) -> None:
    grant = client1.lock.acquire("L", 0.2).grant
    assert grant is not None
    wait_for(lambda: not client1.lock.describe("L").held, "the grant to expire")
    assert client1.lock.extend("L", grant.lock_token, 10).outcome is ExtendOutcome.EXPIRED
    resumed = client1.lock.extend("L", grant.lock_token, 10, resume=True)
    assert resumed.outcome is ExtendOutcome.RESUMED and resumed.fencing_token == grant.fencing_token
    assert client1.lock.describe("L").holders[0].fencing_token == grant.fencing_token


def test_semaphore_and_read_write_modes(client1: Client) -> None:
    permits = [client1.lock.acquire("gpu", 30, limit=2) for _ in range(3)]
    assert [bool(p) for p in permits] == [True, True, False]
    assert permits[0].grant is not None and permits[0].grant.mode is Mode.SHARED  # limit implies shared
    info = client1.lock.describe("gpu")
    assert (info.mode, info.holder_count, info.limit) == (Mode.SHARED, 2, 2)

    readers = [client1.lock.acquire("cfg", 30, mode="shared") for _ in range(3)]
    assert all(readers)
    assert not client1.lock.acquire("cfg", 30, mode=Mode.EXCLUSIVE)


def test_bad_arguments(client1: Client) -> None:
    with pytest.raises(ValueError, match="mode"):
        client1.lock.acquire("L", mode="upgradable")
    with pytest.raises(ValueError, match="ttl"):
        client1.lock.acquire("L", -1)
    with pytest.raises(TypeError, match="name"):
        client1.lock.acquire(b"L")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as empty:
        client1.lock.acquire("")
    assert empty.value.metadata["field"] == "name"
    with pytest.raises(InvalidArgument) as limit:
        client1.lock.acquire("L", mode="exclusive", limit=3)
    assert limit.value.metadata["field"] == "limit"
    with pytest.raises(InvalidArgument) as hold, client1.lock.hold("", ttl=5):
        pass
    assert hold.value.metadata["field"] == "acquire.name"


# ---------------------------------------------------------------- one method per RPC, async


def test_async_methods(coord: CoordUnderTest) -> None:
    async def scenario() -> None:
        async with AsyncClient(coord.target, timeout=10) as client:
            first = await client.lock.acquire("jobs", 30, owner="async")
            assert first and first.fencing_token > 0
            assert not await client.lock.acquire("jobs", 30, wait=0.1)
            assert (await client.lock.describe("jobs")).holders[0].owner == "async"
            assert (await client.lock.extend("jobs", first.lock_token, 60)).outcome is ExtendOutcome.EXTENDED
            assert (await client.lock.release("jobs", first.lock_token)).released
            assert not (await client.lock.describe("jobs")).held

            async with client.lock.acquired("jobs", 30) as grant:
                assert (await client.lock.describe("jobs")).holders[0].fencing_token == grant.fencing_token
                with pytest.raises(LockNotAcquired):
                    async with client.lock.acquired("jobs", 30, wait=0.1):
                        pass
            assert not (await client.lock.describe("jobs")).held

    asyncio.run(scenario())


# ---------------------------------------------------------------- acquired(): Acquire + Release


def test_acquired_context_releases_and_raises_when_taken(client: Client) -> None:
    with client.lock.acquired("report", 30, owner="me") as grant:
        assert client.lock.describe("report").holders[0].fencing_token == grant.fencing_token
        with pytest.raises(LockNotAcquired) as refused, client.lock.acquired("report", 30, wait=0.1):
            pass
        assert refused.value.holders[0].owner == "me" and refused.value.queue_position == 1
    assert not client.lock.describe("report").held


# ---------------------------------------------------------------- hold(): the Hold stream


def test_hold_is_held_inside_and_freed_at_once_on_exit(client: Client) -> None:
    with client.lock("jobs", ttl=100, owner="holder") as lease:
        assert isinstance(lease, Lease) and not lease.lost.is_set()
        lease.check()
        info = client.lock.describe("jobs")
        assert info.holders[0].owner == "holder" and info.holders[0].fencing_token == lease.fencing_token
        assert not client.lock.acquire("jobs")
    # The lease had 100 s left: only the release on exit frees it, and before exit returns.
    assert not client.lock.describe("jobs").held
    assert not lease.lost.is_set()
    with pytest.raises(LockLost) as after:
        lease.check()
    assert after.value.reason == "released"
    assert client.lock.acquire("jobs").fencing_token > lease.fencing_token


def test_hold_released_on_exit_when_the_block_raises(client1: Client) -> None:
    with pytest.raises(RuntimeError), client1.lock("jobs", ttl=100):
        raise RuntimeError("work failed")
    assert not client1.lock.describe("jobs").held


def test_heartbeats_keep_a_short_lease_alive(client1: Client) -> None:
    with client1.lock("short", ttl=0.3) as lease:
        granted_until = lease.expire_time
        assert granted_until is not None

        def renewed_past_the_grant() -> bool:
            # A renewal's expire_time is Redis's time of it plus the TTL: more than a TTL beyond the
            # grant's own expiry means Redis's clock had passed that expiry and the lease still held.
            until = lease.expire_time
            return lease.renewals >= 6 and until is not None and (until - granted_until).total_seconds() > 0.3

        wait_for(renewed_past_the_grant, "six renewals, past the grant's own expiry", timeout=20)
        info = client1.lock.describe("short")
        assert info.holder_count == 1 and info.holders[0].fencing_token == lease.fencing_token
        assert not lease.lost.is_set()
        lease.check()
        assert 0 < lease.remaining() <= 0.3


def test_hold_lost_when_released_elsewhere(client: Client) -> None:
    seen: list[LockLost] = []
    hold = client.lock("jobs", ttl=30, heartbeat=0.05, on_lost=seen.append)
    with pytest.raises(LockLost) as on_exit, hold as lease:
        assert client.lock.release("jobs", lease.lock_token).released
        assert lease.lost.wait(10)
        with pytest.raises(LockLost) as checked:
            lease.check()
        assert checked.value.reason == "not_held"
    assert on_exit.value is checked.value and seen == [checked.value]


def test_hold_lost_when_its_keys_vanish(coord: CoordUnderTest, client: Client) -> None:
    with client.lock("jobs", ttl=30, heartbeat=0.05, raise_on_lost=False) as lease:
        delete_grants(coord, "jobs")
        assert lease.lost.wait(10)
        assert lease.lost_error is not None and lease.lost_error.reason == "not_held"
    assert not client.lock.describe("jobs").held


def test_hold_lost_when_heartbeats_stop(client1: Client) -> None:
    # A heartbeat interval far beyond the lease: the server ends the grant, the client notices.
    with client1.lock("jobs", ttl=0.3, heartbeat=60, raise_on_lost=False) as lease:
        assert lease.lost.wait(10)
        assert lease.lost_error is not None
        assert lease.lost_error.reason in {"expired", "lease_timeout"}
    assert not client1.lock.describe("jobs").held


def test_hold_lost_when_the_stream_breaks(coord_single: CoordUnderTest, client1: Client) -> None:
    doomed = Client(coord_single.target, timeout=10)
    with doomed.lock("jobs", ttl=30, raise_on_lost=False) as lease:
        doomed.close()  # cuts the Hold stream under the lease
        assert lease.lost.wait(10)
        assert lease.lost_error is not None and lease.lost_error.reason == "stream_broken"
    # The server released the grant when the stream broke, long before its 30 s lease.
    wait_for(lambda: not client1.lock.describe("jobs").held, "the broken stream's lock to be freed", 10)


def test_hold_not_acquired_and_waiting(client: Client) -> None:
    holder = client.lock.acquire("jobs", 60, owner="first")
    with pytest.raises(LockNotAcquired) as refused, client.lock("jobs", ttl=10):
        pass
    assert refused.value.holders[0].owner == "first" and refused.value.queue_position == 0
    with pytest.raises(LockNotAcquired) as timed_out, client.lock("jobs", ttl=10, wait=0.2):
        pass
    assert timed_out.value.queue_position == 1

    leases: list[Lease] = []
    done = threading.Event()

    def wait_then_hold() -> None:
        with client.lock("jobs", ttl=10, wait=30) as lease:
            leases.append(lease)
            done.wait(30)

    waiter = threading.Thread(target=wait_then_hold)
    waiter.start()
    wait_for(lambda: client.lock.describe("jobs").queue_length == 1, "the Hold stream to queue")
    client.lock.release("jobs", holder.lock_token)
    wait_for(lambda: bool(leases), "the queued Hold to be granted")
    assert leases[0].fencing_token > holder.fencing_token
    done.set()
    waiter.join(30)
    assert not client.lock.describe("jobs").held


def test_semaphore_read_and_write_helpers(client1: Client) -> None:
    with client1.lock.semaphore("gpu", 2, ttl=10), client1.lock.semaphore("gpu", 2, ttl=10):
        with pytest.raises(LockNotAcquired), client1.lock.semaphore("gpu", 2, ttl=10):
            pass
        assert client1.lock.describe("gpu").holder_count == 2
    with client1.lock.read_lock("cfg", ttl=10), client1.lock.read_lock("cfg", ttl=10):
        assert client1.lock.describe("cfg").holder_count == 2
        with pytest.raises(LockNotAcquired), client1.lock.write_lock("cfg", ttl=10):
            pass
    with client1.lock.write_lock("cfg", ttl=10) as writer:
        assert writer.mode is Mode.EXCLUSIVE


# ---------------------------------------------------------------- hold(): asyncio


def test_async_hold(coord: CoordUnderTest) -> None:
    async def scenario() -> None:
        async with AsyncClient(coord.target, timeout=10) as client:
            async with client.lock("jobs", ttl=0.3, owner="async") as lease:
                assert isinstance(lease, AsyncLease)
                # Three TTLs pass without a loss: heartbeats renew the lease.
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(lease.lost.wait(), 0.9)
                assert lease.renewals >= 4
                info = await client.lock.describe("jobs")
                assert info.holders[0].fencing_token == lease.fencing_token
                lease.check()
            assert not (await client.lock.describe("jobs")).held

            with pytest.raises(LockLost) as on_exit:
                async with client.lock("jobs", ttl=30, heartbeat=0.05) as lease:
                    assert (await client.lock.release("jobs", lease.lock_token)).released
                    await asyncio.wait_for(lease.lost.wait(), 10)
                    with pytest.raises(LockLost):
                        lease.check()
            assert on_exit.value.reason == "not_held"

            holder = await client.lock.acquire("jobs", 60, owner="other")
            with pytest.raises(LockNotAcquired) as refused:
                async with client.lock.write_lock("jobs", ttl=10, wait=0.1):
                    pass
            assert refused.value.holders[0].owner == "other"
            await client.lock.release("jobs", holder.lock_token)
            async with client.lock.semaphore("jobs", 2, ttl=10) as permit:
                assert permit.mode is Mode.SHARED
            assert not (await client.lock.describe("jobs")).held

    asyncio.run(scenario())


# ---------------------------------------------------------------- coordctl lock


def coordctl(target: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "coord_client.cli", "--target", target, *args],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_cli_acquire_describe_extend_release(coord_single: CoordUnderTest, client1: Client) -> None:
    target = coord_single.target
    got = coordctl(target, "lock", "acquire", "jobs", "--ttl", "30s", "--owner", "cli")
    assert got.returncode == 0, got.stderr
    token, fence = got.stdout.decode().split()
    assert int(fence) == client1.lock.describe("jobs").holders[0].fencing_token

    busy = coordctl(target, "--json", "lock", "acquire", "jobs", "--wait", "100ms")
    assert busy.returncode == 1
    answer = json.loads(busy.stdout)
    assert answer["acquired"] is False and answer["holders"][0]["owner"] == "cli"

    described = json.loads(coordctl(target, "--json", "lock", "describe", "jobs").stdout)
    assert described["mode"] == "exclusive" and described["holders"][0]["fencing_token"] == int(fence)
    assert b"cli  exclusive" in coordctl(target, "lock", "describe", "jobs").stdout

    extended = coordctl(target, "lock", "extend", "jobs", token, "--ttl", "5m")
    assert extended.returncode == 0 and b"extended" in extended.stdout
    assert client1.lock.describe("jobs").holders[0].remaining > 200

    assert coordctl(target, "lock", "release", "jobs", "wrong-token").returncode == 1
    released = coordctl(target, "--json", "lock", "release", "jobs", token)
    assert released.returncode == 0 and json.loads(released.stdout)["outcome"] == "released"
    assert coordctl(target, "lock", "extend", "jobs", token).returncode == 1
    assert b"jobs: free" in coordctl(target, "lock", "describe", "jobs").stdout

    bad = coordctl(target, "lock", "acquire", "jobs", "--mode", "exclusive", "--limit", "2")
    assert bad.returncode == 2 and b"INVALID_ARGUMENT" in bad.stderr


def test_cli_run_holds_the_lock_while_the_command_runs(coord_single: CoordUnderTest, client1: Client) -> None:
    probe = (
        "import os, sys\n"
        "from coord_client import Client\n"
        "with Client(sys.argv[1]) as c:\n"
        "    info = c.lock.describe(os.environ['COORD_LOCK_NAME'])\n"
        "fence = int(os.environ['COORD_LOCK_FENCING_TOKEN'])\n"
        "print(info.holder_count, info.holders[0].fencing_token == fence)\n"
        "sys.exit(7)\n"
    )
    target = coord_single.target
    ran = coordctl(target, "lock", "run", "jobs", "--ttl", "10s", "--", sys.executable, "-c", probe, target)
    assert ran.returncode == 7, ran.stderr
    assert ran.stdout == b"1 True\n"
    assert not client1.lock.describe("jobs").held

    ok = coordctl(target, "lock", "run", "jobs", "--", sys.executable, "-c", "pass")
    assert ok.returncode == 0, ok.stderr


def test_cli_run_not_acquired_does_not_run(
    coord_single: CoordUnderTest, client1: Client, tmp_path: Path
) -> None:
    client1.lock.acquire("jobs", 60, owner="busy")
    marker = tmp_path / "ran"
    script = f"open({str(marker)!r}, 'w').close()"
    refused = coordctl(
        coord_single.target, "lock", "run", "jobs", "--wait", "200ms", "--", sys.executable, "-c", script
    )
    assert refused.returncode == 1 and b"not acquired" in refused.stderr and b"busy" in refused.stderr
    assert not marker.exists()


def test_cli_run_stops_the_command_when_the_lock_is_lost(
    coord_single: CoordUnderTest, client1: Client
) -> None:
    command = [
        sys.executable, "-m", "coord_client.cli", "--target", coord_single.target,
        "lock", "run", "jobs", "--ttl", "600ms", "--", sys.executable, "-c", "import time; time.sleep(60)",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        wait_for(lambda: client1.lock.describe("jobs").held, "coordctl to hold the lock")
        delete_grants(coord_single, "jobs")
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 4 and b"lost (not_held)" in err
