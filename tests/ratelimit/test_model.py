"""Generated request sequences (Hypothesis) held to the reference model of each algorithm.

Each sequence draws a rule (periods from 4 ms, so windows roll over, buckets refill and log entries
leave during a sequence, to an hour, so they do not), then steps of (cost, dry run, pause). The
pause only lets Redis time pass; nothing assumes how long it was. Instead each Check is bracketed by
two reads of Redis TIME and narrowed by its own ``decide_time``, and ``reference.Tracker`` accepts a
reply only within what the model answers at the two ends of that interval (every answer is monotone
in time): nothing the model allows is denied, nothing it denies is allowed, and remaining,
reset_after and retry_after lie within the model's bounds. Independently of the model, no window an
algorithm promises ever holds more than its limit. Every example uses fresh keys, so examples never
see each other's state.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import (
    ALGORITHMS,
    FIXED_WINDOW,
    SLIDING_LOG,
    SLIDING_WINDOW,
    TOKEN_BUCKET,
    Limiter,
    desc,
    pb,
)
from .reference import Spec, Tally, Tracker

# Reproducible in CI: the same sequences on every run (derandomize), no example database on disk.
SEQUENCES = settings(max_examples=30, deadline=None, derandomize=True, database=None, print_blob=False)
# Share of decisions whose Redis time bracket is narrow enough for the model to fix the answer.
MIN_DETERMINED = 0.85
NAMES = {
    TOKEN_BUCKET: "token_bucket",
    SLIDING_WINDOW: "sliding_window",
    SLIDING_LOG: "sliding_log",
    FIXED_WINDOW: "fixed_window",
}

_examples = itertools.count()


@dataclass(frozen=True)
class Step:
    costs: tuple[int, ...]  # one per descriptor
    dry_run: bool
    pause_ms: int


@dataclass(frozen=True)
class Case:
    specs: tuple[Spec, ...]
    independent: bool
    steps: tuple[Step, ...]


periods_ms = st.one_of(st.integers(4, 40), st.integers(41, 250), st.just(3_600_000))
pauses_ms = st.sampled_from([0, 0, 0, 0, 1, 2, 5, 15])
dry_runs = st.sampled_from([False, False, False, True])


@st.composite
def spec_of(draw: Any, algorithm: int) -> Spec:
    burst = draw(st.integers(0, 12)) if algorithm == TOKEN_BUCKET else 0
    return Spec(algorithm, draw(st.integers(1, 8)), draw(periods_ms), burst)


@st.composite
def cases(draw: Any, algorithm: int | None = None) -> Case:
    """One descriptor of ``algorithm``; or, when None, two or three of any algorithms in one scope."""
    if algorithm is None:
        chosen = draw(st.lists(st.sampled_from(ALGORITHMS), min_size=2, max_size=3))
        specs = tuple(draw(spec_of(a)) for a in chosen)
        independent = draw(st.booleans())
    else:
        specs, independent = (draw(spec_of(algorithm)),), False
    costs = st.tuples(*(st.one_of(st.just(1), st.integers(1, s.capacity)) for s in specs))
    step = st.builds(Step, costs, dry_runs, pauses_ms)
    return Case(specs, independent, tuple(draw(st.lists(step, min_size=8, max_size=24))))


class RedisClock:
    """Redis TIME in microseconds. The test cluster's nodes all run on this machine: one clock."""

    def __init__(self, coord: Any) -> None:
        node = getattr(coord.backing, "nodes", [coord.backing])[0]
        self.client = node.client()

    def now_us(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1_000_000 + int(micros)

    def close(self) -> None:
        self.client.close()


def play(rl: Limiter, clock: RedisClock, case: Case, tally: Tally) -> None:
    """Run one generated sequence on fresh keys, holding every reply to the model."""
    example = next(_examples)
    scope = f"model:{example}"
    trackers = [Tracker(spec) for spec in case.specs]
    rules = [spec.rule() for spec in case.specs]
    mode = pb.MODE_INDEPENDENT if case.independent else pb.MODE_ALL_OR_NOTHING
    for n, step in enumerate(case.steps):
        where = f"{case.specs} step {n}"
        time.sleep(step.pause_ms / 1000)
        descriptors = [
            desc(f"d{i}", r, cost=c) for i, (r, c) in enumerate(zip(rules, step.costs, strict=True))
        ]
        request = pb.CheckRequest(descriptors=descriptors, dry_run=step.dry_run, mode=mode, scope=scope)
        before = clock.now_us()
        response = rl.stub.Check(request, timeout=10)
        after = clock.now_us()
        assert not response.backend_unavailable, f"{where}: Redis did not decide"
        # The decision's own Redis time, truncated to the millisecond, must lie within the bracket.
        decided = int(response.decide_time.ToMilliseconds()) * 1000
        assert before // 1000 * 1000 <= decided <= after, f"{where}: decide_time outside Redis TIME"
        lo, hi = max(before, decided), min(after, decided + 999)

        statuses = response.statuses
        assert response.allowed == all(s.allowed for s in statuses), where
        for s in statuses:
            takes = s.allowed if case.independent else response.allowed
            assert s.consumed == (takes and not step.dry_run), where
        for i, (tracker, status) in enumerate(zip(trackers, statuses, strict=True)):
            tracker.check(status, step.costs[i], lo, hi, tally, f"{where} descriptor {i}")
        assert response.remaining == min(s.remaining for s in statuses), where
        retry = max((s.retry_after.ToMicroseconds() for s in statuses if not s.allowed), default=0)
        assert response.retry_after.ToMicroseconds() == retry, where


def run_sequences(coord: Any, start_coord: Any, strategy: Any) -> Tally:
    # A private server on the same Redis, patient enough that a loaded machine never turns a
    # decision into a failure-mode one (those are tested in test_backend.py).
    server = start_coord(
        coord.backing.url, redis_cluster=coord.kind == "cluster", redis_timeout=10.0, ratelimit_timeout=10.0
    )
    tally = Tally()
    rl, clock = Limiter(server.target), RedisClock(coord)
    try:

        @SEQUENCES
        @given(strategy)
        def sequences(case: Case) -> None:
            play(rl, clock, case, tally)

        sequences()
    finally:
        rl.close()
        clock.close()
    return tally


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=NAMES.get)
def test_generated_sequences_match_the_model(coord, start_coord, algorithm):
    tally = run_sequences(coord, start_coord, cases(algorithm))
    tally.assert_meaningful(MIN_DETERMINED)


def test_generated_multi_descriptor_sequences_match_the_model(coord, start_coord):
    """All-or-nothing: a denial on one descriptor consumes nothing on the others; independent mode:
    each descriptor consumes on its own decision; dry runs consume nothing in either mode."""
    tally = run_sequences(coord, start_coord, cases())
    tally.assert_meaningful(MIN_DETERMINED)
