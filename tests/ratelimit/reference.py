"""Reference models of the four rate limit algorithms, written from docs/ratelimit.md, and a way to
hold Coord to them when the exact Redis time of each decision is only known within an interval.

Times are integer microseconds of the Redis clock; the sliding counter's weighted estimate is an
exact Fraction. A model sees the history of consumed units as ``(time, cost)`` events and answers,
for a time ``t`` at or after all of them: the earliest time at or after ``t`` at which ``cost`` more
units fit (``t`` itself when they fit now), what remains, and how long until the state is empty.

Every one of those answers is monotone: events that happened later, or a decision taken earlier,
can only leave less room. So when each event is known to lie in ``[lo, hi]`` and the decision in
``[lo, hi]``, the true answer lies between the *pessimistic* evaluation (past events at their ``hi``,
the decision at its ``lo``) and the *optimistic* one (events at ``lo``, the decision at ``hi``).
``Tracker`` checks every reply against those bounds, whatever the wall-clock timing of the run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .helpers import FIXED_WINDOW, SLIDING_LOG, SLIDING_WINDOW, TOKEN_BUCKET, ms, rule

Time = int | Fraction
Event = tuple[int, int]  # (time us, cost)


@dataclass(frozen=True)
class Spec:
    """One rule as the models see it."""

    algorithm: int
    limit: int
    period_ms: int
    burst: int = 0  # token bucket capacity; 0 means ``limit``

    @property
    def period_us(self) -> int:
        return self.period_ms * 1000

    @property
    def capacity(self) -> int:
        return self.burst or self.limit

    @property
    def interval_us(self) -> int:
        """The token bucket's emission interval: period / limit, rounded up to a whole microsecond."""
        return -(-self.period_us // self.limit)

    def rule(self) -> Any:
        return rule(self.limit, self.period_ms / 1000, self.algorithm, burst=self.burst)


# -- the models ------------------------------------------------------------------------------------


def _tat(spec: Spec, events: Sequence[Event]) -> int:
    """GCRA's theoretical arrival time after replaying every consumed event."""
    tat = 0
    for s, cost in events:
        tat = max(tat, s) + cost * spec.interval_us
    return tat


def _in_window(spec: Spec, events: Sequence[Event], window: int) -> int:
    return sum(cost for s, cost in events if s // spec.period_us == window)


def _live(spec: Spec, events: Sequence[Event], t: int) -> list[int]:
    """The sliding log's entries (one per unit) still inside the window ``(t - period, t]``."""
    return sorted(s for s, cost in events for _ in range(cost) if s > t - spec.period_us)


def _estimate(spec: Spec, events: Sequence[Event], t: int) -> tuple[Fraction, int, int, int]:
    """Sliding counter: (estimate, current count, previous count, current window start)."""
    period = spec.period_us
    window = t // period
    start = window * period
    current, previous = _in_window(spec, events, window), _in_window(spec, events, window - 1)
    return Fraction(previous * (period - (t - start)), period) + current, current, previous, start


def allow_time(spec: Spec, events: Sequence[Event], t: int, cost: int) -> Time:
    """The earliest time >= ``t`` at which ``cost`` units fit, if nothing else is consumed."""
    if spec.algorithm == TOKEN_BUCKET:
        interval = spec.interval_us
        return max(t, max(_tat(spec, events), t) + (cost - spec.capacity) * interval)
    if spec.algorithm == FIXED_WINDOW:
        window = t // spec.period_us
        fits = _in_window(spec, events, window) + cost <= spec.limit
        return t if fits else (window + 1) * spec.period_us
    if spec.algorithm == SLIDING_LOG:
        live = _live(spec, events, t)
        must_leave = len(live) + cost - spec.limit
        return t if must_leave <= 0 else live[must_leave - 1] + spec.period_us
    if spec.algorithm == SLIDING_WINDOW:
        est, current, previous, start = _estimate(spec, events, t)
        room, period = spec.limit - cost, spec.period_us
        if est <= room:
            return t
        # The estimate only decays from here on: solve for when it reaches ``room``, in this
        # window (the previous count fading) or else in the next (the current count fading).
        if current <= room:
            return start + period - Fraction((room - current) * period, previous)
        return start + 2 * period - Fraction(room * period, current)
    raise AssertionError(f"unknown algorithm {spec.algorithm}")


def remaining(spec: Spec, events: Sequence[Event], t: int) -> int:
    """Units that would fit at ``t`` (at least 0)."""
    if spec.algorithm == TOKEN_BUCKET:
        interval = spec.interval_us
        left = (t + spec.capacity * interval - max(_tat(spec, events), t)) // interval
    elif spec.algorithm == FIXED_WINDOW:
        left = spec.limit - _in_window(spec, events, t // spec.period_us)
    elif spec.algorithm == SLIDING_LOG:
        left = spec.limit - len(_live(spec, events, t))
    else:
        left = math.floor(spec.limit - _estimate(spec, events, t)[0])
    return max(0, left)


def reset_after(spec: Spec, events: Sequence[Event], t: int) -> Time:
    """How long after ``t`` the state is back to "nothing consumed"."""
    period = spec.period_us
    if spec.algorithm == TOKEN_BUCKET:
        return max(0, _tat(spec, events) - t)
    if spec.algorithm == FIXED_WINDOW:
        window = t // period
        return (window + 1) * period - t if _in_window(spec, events, window) else 0
    if spec.algorithm == SLIDING_LOG:
        live = _live(spec, events, t)
        return live[-1] + period - t if live else 0
    _, current, previous, start = _estimate(spec, events, t)
    if current:
        return start + 2 * period - t
    return start + period - t if previous else 0


# -- holding replies to the models -----------------------------------------------------------------


def ceil_ms(us: Time) -> int:
    """Microseconds as the service reports them: rounded up to whole milliseconds."""
    return math.ceil(Fraction(us) / 1000)


@dataclass
class Tally:
    """What a run of sequences exercised, so that a test can show it was not vacuous."""

    counts: Counter[str] = field(default_factory=Counter)

    def assert_meaningful(self, min_determined: float) -> None:
        c = self.counts
        assert c["allowed"] and c["denied"], c
        assert c["time-dependent"], c
        assert c["determined"] >= min_determined * c["decisions"], c


@dataclass
class Tracker:
    """The consumed events of one descriptor's state, each known within ``[lo, hi]`` microseconds."""

    spec: Spec
    events: list[tuple[int, int, int]] = field(default_factory=list)  # (lo, hi, cost)

    def _at(self, side: int) -> list[Event]:
        """The events placed at their earliest (``side`` 0) or latest (``side`` 1) possible time."""
        return [(e[side], e[2]) for e in self.events]

    def expect(self, cost: int, lo: int, hi: int, tally: Tally) -> tuple[bool, bool]:
        """(must allow, must deny) for ``cost`` units decided at a time in ``[lo, hi]``."""
        must_allow = allow_time(self.spec, self._at(1), lo, cost) <= lo
        must_deny = allow_time(self.spec, self._at(0), hi, cost) > hi
        tally.counts["decisions"] += 1
        tally.counts["determined"] += must_allow or must_deny
        # Allowed only because time passed: had every past event happened just now, it would not fit.
        if must_allow and allow_time(self.spec, [(lo, e[2]) for e in self.events], lo, cost) > lo:
            tally.counts["time-dependent"] += 1
        return must_allow, must_deny

    def check(self, status: Any, cost: int, lo: int, hi: int, tally: Tally, where: str) -> None:
        """Hold one DescriptorStatus, decided at a time in ``[lo, hi]``, to the model; then record it."""
        spec = self.spec
        must_allow, must_deny = self.expect(cost, lo, hi, tally)
        assert not (must_allow and not status.allowed), f"{where}: denied what the model allows"
        assert not (must_deny and status.allowed), f"{where}: allowed what the model denies"
        tally.counts["allowed" if status.allowed else "denied"] += 1
        if not status.allowed:
            # The earliest time the cost fits, seen from the decision: between the two evaluations.
            soonest = allow_time(spec, self._at(0), hi, cost) - hi
            latest = allow_time(spec, self._at(1), lo, cost) - lo
            assert ceil_ms(max(soonest, 1)) <= ms(status.retry_after) <= ceil_ms(latest), (
                f"{where}: retry_after {ms(status.retry_after)} ms outside [{soonest}, {latest}] us"
            )
        else:
            assert ms(status.retry_after) == 0, where
        # What remains after this decision's effect: pessimistically the past happened late and this
        # decision early, optimistically the other way round.
        late, early = self._at(1), self._at(0)
        if status.consumed:
            late.append((lo, cost))
            early.append((hi, cost))
        low, high = remaining(spec, late, lo), remaining(spec, early, hi)
        assert low <= status.remaining <= high, (
            f"{where}: remaining {status.remaining} not in [{low}, {high}]"
        )
        shortest, longest = reset_after(spec, early, hi), reset_after(spec, late, lo)
        assert ceil_ms(shortest) <= ms(status.reset_after) <= ceil_ms(longest), (
            f"{where}: reset_after {ms(status.reset_after)} ms outside [{shortest}, {longest}] us"
        )
        if status.consumed:
            self.events.append((lo, hi, cost))
        self.assert_promise(where)

    def assert_promise(self, where: str) -> None:
        """The algorithm's documented promise over everything consumed so far, independent of the
        model: no window it promises ever holds more than the limit. Only events that lie inside a
        window whatever their exact time are counted, so timing uncertainty never fails it."""
        spec, events, period = self.spec, self.events, self.spec.period_us
        if spec.algorithm == TOKEN_BUCKET:
            # From the first to the last of any run of consumptions, at most the bucket plus
            # one unit per emission interval.
            interval = spec.interval_us
            for i in range(len(events)):
                for j in range(i, len(events)):
                    used = sum(e[2] for e in events[i : j + 1])
                    span = events[j][1] - events[i][0]
                    assert used * interval <= spec.capacity * interval + span, (
                        f"{where}: {used} units in {span} us"
                    )
            return
        if spec.algorithm in (FIXED_WINDOW, SLIDING_WINDOW):
            per_window: Counter[int] = Counter()
            for lo, hi, cost in events:
                if lo // period == hi // period:
                    per_window[lo // period] += cost
            assert max(per_window.values(), default=0) <= spec.limit, f"{where}: {per_window}"
        # Any interval of one period: the limit for the log; a fixed window or the counter may hold
        # the limit on either side of a window boundary.
        bound = spec.limit if spec.algorithm == SLIDING_LOG else 2 * spec.limit
        for j, (_, hi_j, _) in enumerate(events):
            inside = sum(cost for lo, _, cost in events[: j + 1] if lo > hi_j - period)
            assert inside <= bound, f"{where}: {inside} units within one period"
