"""The Python client (sync and async) and coordctl against a real Coord."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from coord_client import AsyncClient, Client, InvalidArgument
from coord_client.ratelimit import Limit, RateLimited, parse_rate


@pytest.fixture
def client(coord):
    with Client(coord.target) as c:
        yield c


def test_parse_rate():
    assert parse_rate("100/m") == (100, 60.0)
    assert parse_rate("5/15m") == (5, 900.0)
    assert parse_rate("3/2.5s") == (3, 2.5)
    assert parse_rate("10/ms") == (10, 0.001)
    with pytest.raises(ValueError, match="LIMIT/PERIOD"):
        parse_rate("100 per minute")


def test_limit_returns_a_decision(client):
    first = client.limit("user:42", rate="100/m", burst=2)
    assert first and first.allowed and first.remaining == 1
    assert first.statuses[0].algorithm == "token_bucket"
    assert first.headers == {"RateLimit": '"d0";r=1;t=1', "RateLimit-Policy": '"d0";q=100;w=60'}
    assert first.decide_time is not None and first.decide_time.tzinfo is not None
    assert abs((first.decide_time - datetime.now(UTC)).total_seconds()) < 60  # Redis's clock, in UTC
    assert first.statuses[0].period == 60.0 and first.retry_after == 0.0
    assert client.limit("user:42", rate="100/m", burst=2)
    denied = client.limit("user:42", rate="100/m", burst=2)
    assert not denied and 0 < denied.retry_after <= 0.6
    assert denied.retry_after == denied.statuses[0].retry_after  # whole milliseconds, in seconds
    assert abs(denied.retry_after * 1000 - round(denied.retry_after * 1000)) < 1e-6
    assert client.ratelimit.reset("user:42")
    assert client.limit("user:42", rate="100/m", burst=2, dry_run=True).remaining == 2


def test_multi_limit_check(client):
    decision = client.ratelimit.check(
        Limit("user:1", rate="2/h", algorithm="sliding_log"),
        Limit("org:1", rate="1/h", algorithm="fixed_window", name="org"),
        scope="org:1",
    )
    assert decision and [s.remaining for s in decision.statuses] == [1, 0]
    denied = client.ratelimit.check(
        Limit("user:1", rate="2/h", algorithm="sliding_log"),
        Limit("org:1", rate="1/h", algorithm="fixed_window"),
        scope="org:1",
    )
    assert not denied and [s.consumed for s in denied.statuses] == [False, False]


def test_server_refusals_raise_typed_errors(client):
    with pytest.raises(InvalidArgument) as caught:
        client.limit("k", rate="0/s")
    assert caught.value.field_violations[0][0] == "descriptors[0].rule.limit"
    with pytest.raises(ValueError, match="exactly one"):
        client.ratelimit.check(Limit("k"))


def test_limited_context_and_decorator_raise_rate_limited(client):
    with client.ratelimit.limited("ctx", rate="1/h") as decision:
        assert decision.remaining == 0
    with pytest.raises(RateLimited) as caught, client.ratelimit.limited("ctx", rate="1/h"):
        pytest.fail("the body must not run when denied")
    assert 3599 < caught.value.retry_after <= 3600
    assert not caught.value.decision.allowed

    calls = []

    @client.ratelimit.limited("user:{user_id}", rate="2/h", algorithm="fixed_window")
    def handle(user_id: int, payload: str = "") -> str:
        calls.append(user_id)
        return f"ok {user_id}"

    assert handle(1) == "ok 1" and handle(1) == "ok 1" and handle(2) == "ok 2"
    with pytest.raises(RateLimited):
        handle(user_id=1)
    assert calls == [1, 1, 2]


def test_async_twins(coord):
    async def main() -> None:
        async with AsyncClient(coord.target) as client:
            first = await client.limit("a", rate="1/h")
            assert first and first.remaining == 0
            assert not await client.ratelimit.limit("a", rate="1/h")
            with pytest.raises(RateLimited):
                async with client.ratelimit.limited("a", rate="1/h"):
                    pytest.fail("the body must not run when denied")

            @client.ratelimit.limited("job:{name}", rate="1/h")
            async def job(name: str) -> str:
                return name

            assert await job("x") == "x"
            with pytest.raises(RateLimited):
                await job("x")
            assert await client.ratelimit.reset("a")
            multi = await client.ratelimit.check(
                Limit("p", rate="5/s"), Limit("q", rate="5/s"), independent=True, cost=2
            )
            assert [s.remaining for s in multi.statuses] == [3, 3]

    asyncio.run(main())


def coordctl(target: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "coord_client.cli", "--target", target, *args],
        capture_output=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )


def test_coordctl_check_and_reset(coord_single):
    target = coord_single.target
    ok = coordctl(target, "ratelimit", "check", "cli", "--rate", "2/h", "--cost", "2")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.decode().startswith("allowed (remaining 0 of 2")
    dry = coordctl(target, "--json", "ratelimit", "check", "cli", "--rate", "2/h", "--dry-run")
    assert dry.returncode == 1
    data = json.loads(dry.stdout)
    assert data["allowed"] is False and 1799 < data["retry_after"] <= 1800  # one unit per 30 m
    assert data["statuses"][0]["consumed"] is False
    bad = coordctl(target, "ratelimit", "check", "cli", "--rate", "2/h", "--cost", "3")
    assert bad.returncode == 2 and b"RATELIMIT_COST_TOO_HIGH" in bad.stderr
    assert coordctl(target, "ratelimit", "reset", "cli").returncode == 0
    again = coordctl(target, "ratelimit", "reset", "cli")
    assert again.returncode == 1 and b"had no state" in again.stderr
