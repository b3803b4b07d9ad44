"""The Python client's election API (sync and async) and ``coordctl election``, against a real Coord.

Campaigns, losses and observation run on single-node Redis and on Redis Cluster; argument handling
and the CLI on single-node Redis only.
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

from coord_client import AsyncClient, Client
from coord_client.election import (
    ChangeKind,
    EndReason,
    LeaderChange,
    LeadershipLost,
    NotElected,
    ResignOutcome,
)

from ..conftest import CoordUnderTest, wait_for


@pytest.fixture
def client(coord: CoordUnderTest) -> Iterator[Client]:
    with Client(coord.target, timeout=10) as c:
        yield c


@pytest.fixture
def client1(coord_single: CoordUnderTest) -> Iterator[Client]:
    with Client(coord_single.target, timeout=10) as c:
        yield c


def test_campaign_leads_proclaims_and_resigns(client: Client) -> None:
    scheduler = client.election("scheduler")
    assert scheduler.leader() is None
    with scheduler.campaign(value=b"host-a", ttl=2) as leadership:
        assert leadership.term > 0 and leadership.value == b"host-a"
        leadership.check()
        leader = scheduler.leader()
        assert leader is not None and leader.term == leadership.term and leader.value == b"host-a"
        result = leadership.proclaim("host-a:busy")
        assert result and leadership.value == b"host-a:busy"
        assert scheduler.leader().value == b"host-a:busy"  # type: ignore[union-attr]
        wait_for(lambda: leadership.renewals >= 2, "two confirmed keep-alives")
        assert leadership.remaining() > 0 and "leadership_token" not in repr(leadership)
    assert leadership.resigned and not leadership.lost.is_set()
    with pytest.raises(LeadershipLost, match="resigned"):
        leadership.check()
    assert scheduler.leader() is None


def test_a_second_candidate_takes_over_when_the_block_ends(coord: CoordUnderTest, client: Client) -> None:
    election = client.election("E")
    elected = threading.Event()
    terms: list[int] = []

    def second() -> None:
        with election.campaign(value=b"b") as leadership:
            terms.append(leadership.term)
            elected.set()

    with election.campaign(value=b"a") as first:
        thread = threading.Thread(target=second)
        thread.start()
        with coord.redis() as r:  # queued: the election's lock has a waiter
            wait_for(lambda: r.zcard("coord:default:election:{E}:q") == 1, "the second candidate to queue")
        assert not elected.is_set()
    thread.join(20)
    assert elected.is_set() and terms[0] > first.term


def test_a_loss_is_raised_on_check_and_on_leaving(client: Client) -> None:
    election = client.election("E")
    lost: list[LeadershipLost] = []
    with (
        pytest.raises(LeadershipLost) as raised,
        election.campaign(value=b"a", ttl=30, on_lost=lost.append) as leadership,
    ):
        assert election.resign(leadership.term, leadership.leader_token).outcome is ResignOutcome.RESIGNED
        # The stream learns it at its next keep-alive (a third of the lease), or at once through
        # a refused Proclaim.
        with pytest.raises(LeadershipLost) as refused:
            leadership.proclaim(b"stale")
        assert refused.value.reason == "not_leader"
        assert leadership.lost.is_set()
        with pytest.raises(LeadershipLost):
            leadership.check()
    assert raised.value.reason == "not_leader" and lost and lost[0] is raised.value


def test_a_deposed_leaders_proclaim_is_refused(client: Client) -> None:
    election = client.election("E")
    with election.campaign(value=b"a") as old:
        term, token = old.term, old.leader_token
    with election.campaign(value=b"b") as new:
        refused = election.proclaim(term, token, b"stale")
        assert not refused and refused.leader is not None and refused.leader.term == new.term
        assert election.leader().value == b"b"  # type: ignore[union-attr]
    again = election.resign(term, token)
    assert again.outcome is ResignOutcome.RESIGNED and again  # idempotent while remembered


def test_not_elected_within_wait(client: Client) -> None:
    election = client.election("E")
    with election.campaign(value=b"a") as leadership:
        with pytest.raises(NotElected) as refused, election.campaign(value=b"b", wait=0.3):
            pytest.fail("elected while another leads")
        assert refused.value.leader_term == leadership.term and refused.value.position == 1
    with election.campaign(value=b"c", wait=5) as next_one:  # the queue is empty again
        assert next_one.term > leadership.term


def test_observe_follows_and_resumes(client: Client) -> None:
    election = client.election("E")
    seen: list[LeaderChange] = []
    with election.observe() as observation:
        changes = iter(observation)
        seen.append(next(changes))
        with election.campaign(value=b"a") as leadership:
            leadership.proclaim(b"a2")
        seen.extend(next(changes) for _ in range(3))
        assert observation.revision == seen[-2].revision  # the last one handed out before this next()
    kinds = [c.kind for c in seen]
    assert kinds == [ChangeKind.CURRENT, ChangeKind.ELECTED, ChangeKind.PROCLAIMED, ChangeKind.ENDED]
    assert seen[0].leader is None and seen[1].value == b"a" and seen[2].value == b"a2"
    assert seen[3].ended_term == leadership.term and seen[3].end_reason is EndReason.RESIGNED
    with election.observe(after=seen[1].revision) as resumed:
        assert [c.kind for c in _take(resumed, 2)] == [ChangeKind.PROCLAIMED, ChangeKind.ENDED]
    state = election.state()
    assert state.leader is None and state.revision == seen[-1].revision


def _take(observation: object, count: int) -> list[LeaderChange]:
    out: list[LeaderChange] = []
    for change in observation:  # type: ignore[attr-defined]
        out.append(change)
        if len(out) == count:
            break
    return out


def test_async_campaign_and_observe(coord: CoordUnderTest) -> None:
    async def main() -> None:
        async with AsyncClient(coord.target, timeout=10) as client:
            election = client.election("E")
            observation = election.observe()
            changes = observation.__aiter__()
            first = await anext(changes)
            assert first.kind is ChangeKind.CURRENT and first.leader is None
            async with election.campaign(value="host-a", ttl=1) as leadership:
                assert (await election.leader()).term == leadership.term  # type: ignore[union-attr]
                assert await leadership.proclaim(b"host-a2")
                while leadership.renewals < 2:  # noqa: ASYNC110  (counted by the reader task)
                    await asyncio.sleep(0.05)
                leadership.check()
            kinds = [(await anext(changes)).kind for _ in range(3)]
            assert kinds == [ChangeKind.ELECTED, ChangeKind.PROCLAIMED, ChangeKind.ENDED]
            observation.close()
            await changes.aclose()  # type: ignore[attr-defined]
            with pytest.raises(NotElected):
                async with election.campaign(value=b"a"), election.campaign(value=b"b", wait=0.2):
                    pytest.fail("elected while another leads")
            async with election.campaign(value=b"x") as led:
                await election.resign(led.term, led.leader_token)
                with pytest.raises(LeadershipLost):
                    await led.proclaim(b"y")
            assert led.lost_error is not None and led.lost_error.reason == "not_leader"

    with pytest.raises(LeadershipLost):  # the block raised nothing: the loss is raised on leaving
        asyncio.run(main())


def test_arguments_are_checked_before_sending(client1: Client) -> None:
    election = client1.election("E")
    with pytest.raises(TypeError):
        election.campaign(value=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        election.campaign(ttl=-1)
    with pytest.raises(ValueError):
        election.proclaim(0, "t", b"v")
    with pytest.raises(TypeError):
        client1.election(b"E")  # type: ignore[arg-type]


# ---------------------------------------------------------------- coordctl election


def coordctl(target: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "coord_client.cli", "--target", target, *args],
        capture_output=True,
        check=False,
        timeout=timeout,
        env=os.environ.copy(),
    )


def test_cli_leader_and_observe(coord_single: CoordUnderTest, client1: Client) -> None:
    target = coord_single.target
    nobody = coordctl(target, "election", "leader", "E")
    assert nobody.returncode == 1 and b"nobody leads" in nobody.stderr
    with client1.election("E").campaign(value=b"host-a") as leadership:
        done = coordctl(target, "election", "leader", "E")
        assert done.returncode == 0 and done.stdout.decode().split() == [str(leadership.term), "host-a"]
        as_json = json.loads(coordctl(target, "--json", "election", "leader", "E").stdout)
        assert as_json["leader"]["term"] == leadership.term and as_json["leader"]["value"] == "host-a"
        watched = coordctl(target, "--json", "election", "observe", "E", "--count", "1")
        state = json.loads(watched.stdout)
        assert state["kind"] == "current" and state["leader"]["value"] == "host-a"
    after = coordctl(target, "election", "observe", "E", "--after", state["revision"], "--count", "1")
    assert after.returncode == 0 and f"ended term {leadership.term} (resigned)" in after.stdout.decode()


def test_cli_campaign_runs_the_command_while_leader(coord_single: CoordUnderTest, tmp_path: Path) -> None:
    out = tmp_path / "env"
    script = f"import os; open({str(out)!r}, 'w').write(os.environ['COORD_ELECTION_TERM'])"
    done = coordctl(
        coord_single.target,
        "election",
        "campaign",
        "E",
        "--value",
        "host-a",
        "--",
        sys.executable,
        "-c",
        script,
    )
    assert done.returncode == 0, done.stderr
    assert int(out.read_text()) > 0
    failing = coordctl(
        coord_single.target, "election", "campaign", "E", "--", sys.executable, "-c", "exit(3)"
    )
    assert failing.returncode == 3
    with Client(coord_single.target) as client:
        assert client.election("E").leader() is None  # resigned when the command exited


def test_cli_campaign_not_elected_and_stopped_on_loss(coord_single: CoordUnderTest, client1: Client) -> None:
    target = coord_single.target
    election = client1.election("E")
    with election.campaign(value=b"a"):
        late = coordctl(target, "election", "campaign", "E", "--wait", "300ms", "--", "true")
        assert late.returncode == 1 and b"not elected" in late.stderr
    # A command that would run for a minute is stopped when the leadership is resigned elsewhere.
    child = subprocess.Popen(
        [sys.executable, "-m", "coord_client.cli", "--target", target, "election", "campaign", "E",
         "--ttl", "1s", "--", sys.executable, "-c", "import time; time.sleep(60)"],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(lambda: election.leader() is not None, "coordctl to lead")
        led = election.leader()
        assert led is not None
        # Its token is its own: the leadership is ended by removing the grant in Redis instead.
        with coord_single.redis() as r:
            r.delete(*(f"coord:default:election:{{E}}:{suffix}" for suffix in ("h", "d", "x")))
        assert child.wait(30) == 4
        assert child.stderr is not None and b"lost" in child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr is not None:
            child.stderr.close()
