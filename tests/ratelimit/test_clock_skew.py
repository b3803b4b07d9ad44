"""Coord servers whose clocks are minutes off change no rate limit decision: the only clock is Redis.

Two server processes run under ``faketime`` (libfaketime), one 10 minutes ahead and one 10 minutes
behind, next to a normal server, all on one Redis. The same checks, once spread round-robin over the
three servers and once all on the normal server (on other keys), must give the same decisions step
by step. The rules are chosen so that a server using its own clock would decide differently: the
token bucket refills two units in 10 minutes, the sliding log forgets everything older than 5, and
the windows' period puts "now" in the middle of a window, with 10 minutes either side in another.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ..conftest import wait_for
from .helpers import (
    FIXED_WINDOW,
    SLIDING_LOG,
    SLIDING_WINDOW,
    TOKEN_BUCKET,
    Limiter,
    ms,
    pb,
    redis_now_ms,
    rule,
)

SKEW_S = 600
SKEWS = {"+10m": SKEW_S, "-10m": -SKEW_S}
# (cost, dry run): fills each limit of 4, then asks for more, peeking on the way.
STEPS = [
    (1, False),
    (2, False),
    (1, True),
    (1, False),
    (1, False),
    (2, True),
    (1, False),
    (3, False),
    (1, False),
]
# Redis waits long enough that a loaded machine never turns a decision into a failure-mode one.
PATIENT_S = 10
PATIENT = ("redis_timeout", "ratelimit_timeout")
LISTENING = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: Coord listening on 127\.0\.0\.1:(\d+);", re.M
)


class SkewedServer:
    """``faketime -f <skew> python -m coord_server``: a Coord process whose wall clock is shifted."""

    def __init__(self, coord: Any, skew: str, workdir: Path) -> None:
        faketime = shutil.which("faketime")
        assert faketime, "faketime is not installed: run `make deps` (apt-get install faketime)"
        self.log_path = workdir / f"coord{skew}.log"
        env = {
            **os.environ,
            "COORD_REDIS_URL": coord.backing.url,
            "COORD_REDIS_CLUSTER": "1" if coord.kind == "cluster" else "0",
            "COORD_LISTEN": "127.0.0.1:0",
            "COORD_LOG_LEVEL": "INFO",
            **{f"COORD_{name.upper()}": f"{PATIENT_S}s" for name in PATIENT},
        }
        # -m: the thread-safe libfaketime (gRPC runs threads); monotonic clocks stay real, so only
        # the wall clock a careless server would read is off.
        command = [faketime, "-m", "--exclude-monotonic", "-f", skew, sys.executable, "-m", "coord_server"]
        self.started = time.time()
        with self.log_path.open("wb") as log:
            # Its own process group: faketime forks the server and does not forward signals, so the
            # group (whose id is the pid we started) is what stop() signals.
            self.proc = subprocess.Popen(
                command, env=env, stderr=log, stdout=subprocess.DEVNULL, start_new_session=True
            )
        self.target = ""
        self.logged_at = self.seen = 0.0

    def wait_listening(self) -> None:
        def listening() -> bool:
            assert self.proc.poll() is None, self.log_path.read_text(errors="replace")
            found = LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                stamp = datetime.strptime(found[1], "%Y-%m-%d %H:%M:%S,%f")  # the process's local time
                self.logged_at, self.target = stamp.timestamp(), f"127.0.0.1:{found[2]}"
            return bool(found)

        wait_for(listening, f"{self.log_path.name} to say it is listening", timeout=60)
        self.seen = time.time()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)  # faketime exits once the server it forked has exited
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def normal(coord, start_coord) -> str:
    """The target of a Coord on the test's clock, sharing the skewed servers' Redis."""
    patient = {name: float(PATIENT_S) for name in PATIENT}
    return str(start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster", **patient).target)


@pytest.fixture
def skewed(coord, normal, tmp_path) -> Iterator[list[str]]:
    """The targets of the normal server, then of servers 10 minutes ahead and 10 minutes behind."""
    servers = {skew: SkewedServer(coord, skew, tmp_path) for skew in SKEWS}
    try:
        for skew, server in servers.items():
            server.wait_listening()
            # The process really runs on a shifted clock: its own log line is stamped 10 minutes off.
            shift = server.logged_at - server.started
            assert SKEWS[skew] - 5 <= shift <= SKEWS[skew] + 5 + (server.seen - server.started), (skew, shift)
        yield [normal, *(server.target for server in servers.values())]
    finally:
        for server in servers.values():
            server.stop()


def mid_window_period_ms(now_ms: int) -> int:
    """A period of 10 to 11 minutes whose epoch-aligned window has ``now_ms`` in its middle half.

    A clock 10 minutes off either way is then in another window, while this test (seconds long)
    stays in this one. The remainder of ``now_ms`` jumps about as the period grows by 1 ms, so a
    period that fits comes within a few tries.
    """
    for period in range(SKEW_S * 1000 + 1, SKEW_S * 1100):
        if period // 4 <= now_ms % period <= 3 * period // 4:
            return period
    raise AssertionError(f"no period puts {now_ms} mid-window")


def test_servers_with_skewed_clocks_decide_as_one_server(coord, skewed):
    window_ms = mid_window_period_ms(redis_now_ms(coord))
    rules = {
        "token_bucket": rule(4, 1200, TOKEN_BUCKET),  # one unit every 5 minutes
        "sliding_log": rule(4, 300, SLIDING_LOG),
        "fixed_window": rule(4, window_ms / 1000, FIXED_WINDOW),
        "sliding_window": rule(4, window_ms / 1000, SLIDING_WINDOW),
    }
    limiters = [Limiter(target) for target in skewed]
    normal = limiters[0]
    try:
        turn = 0
        for name, r in rules.items():
            for step, (cost, dry_run) in enumerate(STEPS):
                alone = normal.one(f"alone:{name}", r, cost=cost, dry_run=dry_run)
                before = redis_now_ms(coord)
                shared = limiters[turn % len(limiters)].one(f"shared:{name}", r, cost=cost, dry_run=dry_run)
                after = redis_now_ms(coord)
                where = f"{name} step {step} on server {turn % len(limiters)}"
                turn += 1
                assert not alone.backend_unavailable and not shared.backend_unavailable, where
                assert (shared.allowed, shared.statuses[0].consumed, shared.remaining) == (
                    alone.allowed,
                    alone.statuses[0].consumed,
                    alone.remaining,
                ), where
                # Durations agree to within the time between the two checks, not 10 minutes.
                assert abs(ms(shared.retry_after) - ms(alone.retry_after)) <= 2000, where
                assert abs(ms(shared.reset_after) - ms(alone.reset_after)) <= 2000, where
                # Every server stamps its decision with Redis time, whatever its own clock says.
                assert before <= shared.decide_time.ToMilliseconds() <= after, where
            assert not normal.one(f"shared:{name}", r, dry_run=True).allowed, f"{name}: limit never reached"
    finally:
        for limiter in limiters:
            limiter.close()


def test_all_or_nothing_checks_through_skewed_servers(coord, skewed):
    """Several descriptors in one scope, decided by servers 10 minutes apart: still exactly the
    limit of the tightest rule, and nothing consumed by a denied check."""
    window_ms = mid_window_period_ms(redis_now_ms(coord))
    limiters = [Limiter(target) for target in skewed]
    descriptors = [
        pb.Descriptor(key="user", rule=rule(5, 1200, TOKEN_BUCKET)),
        pb.Descriptor(key="org", rule=rule(3, window_ms / 1000, FIXED_WINDOW)),
        pb.Descriptor(key="ip", rule=rule(7, 300, SLIDING_LOG)),
    ]
    try:
        replies = [limiters[i % len(limiters)].check(*descriptors, scope="tenant") for i in range(9)]
        assert [x.allowed for x in replies] == [True] * 3 + [False] * 6
        assert [[s.remaining for s in x.statuses] for x in replies[:4]] == [
            [4, 2, 6],
            [3, 1, 5],
            [2, 0, 4],
            [2, 0, 4],
        ]
        assert all(not s.consumed for x in replies[3:] for s in x.statuses)
    finally:
        for limiter in limiters:
            limiter.close()
