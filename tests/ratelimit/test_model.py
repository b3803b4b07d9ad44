"""Generated request sequences against a reference model of each algorithm.

Periods are long (hours to a day) so that, within one sequence, only the model's own arithmetic
matters: the token bucket does not refill (one unit per 6 minutes), the sliding log keeps every
entry, and the fixed window follows the epoch-aligned window of each decision's Redis time.
Costs, dry runs and all-or-nothing pairs are drawn from a seeded generator, so a failure names its
seed and replays exactly.
"""

from __future__ import annotations

import random

import pytest

from .helpers import FIXED_WINDOW, SLIDING_LOG, SLIDING_WINDOW, TOKEN_BUCKET, Limiter, desc, rule

DAY_MS = 86_400_000


class Model:
    """Units consumed per window; ``capacity`` per window; window length ``period_ms`` (0: one window)."""

    def __init__(self, capacity: int, period_ms: int = 0) -> None:
        self.capacity, self.period_ms = capacity, period_ms
        self.window, self.used = -1, 0

    def allows(self, cost: int, now_ms: int) -> bool:
        window = now_ms // self.period_ms if self.period_ms else 0
        if window != self.window:
            self.window, self.used = window, 0
        return self.used + cost <= self.capacity

    def remaining(self) -> int:
        return self.capacity - self.used


RULES = {
    "token_bucket": (rule(10, 3600, TOKEN_BUCKET, burst=7), lambda: Model(7)),
    "sliding_log": (rule(9, 3600, SLIDING_LOG), lambda: Model(9)),
    "fixed_window": (rule(8, 2, FIXED_WINDOW), lambda: Model(8, 2000)),
    "sliding_window": (rule(6, 86400, SLIDING_WINDOW), lambda: Model(6, DAY_MS)),
}


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("seed", range(4))
def test_single_descriptor_matches_the_model(coord, name, seed):
    rng = random.Random(f"{name}-{seed}")
    r, make = RULES[name]
    model = make()
    rl = Limiter(coord.target)
    for step in range(40):
        cost = rng.choice([1, 1, 1, 2, 3])
        dry = rng.random() < 0.2
        response = rl.one("m", r, cost=cost, dry_run=dry)
        now_ms = int(response.decide_time.ToMilliseconds())
        expected = model.allows(cost, now_ms)
        if name == "sliding_window" and model.window != now_ms // DAY_MS:
            pytest.fail("crossed midnight UTC; the sequence is only valid within one day")
        assert response.allowed == expected, f"seed {seed} step {step}: cost {cost} dry {dry}"
        if expected and not dry:
            model.used += cost
        assert response.remaining == model.remaining(), f"seed {seed} step {step}"
        assert response.statuses[0].consumed == (expected and not dry)
    rl.close()


@pytest.mark.parametrize("seed", range(4))
def test_all_or_nothing_pairs_match_the_model(coord, seed):
    rng = random.Random(f"pair-{seed}")
    first, second = Model(7), Model(9)
    rl = Limiter(coord.target)
    for step in range(40):
        cost_a, cost_b = rng.choice([1, 2, 3]), rng.choice([1, 2])
        response = rl.check(
            desc("a", RULES["token_bucket"][0], cost=cost_a),
            desc("b", RULES["sliding_log"][0], cost=cost_b),
            scope="pair",
        )
        ok_a, ok_b = first.allows(cost_a, 0), second.allows(cost_b, 0)
        assert [s.allowed for s in response.statuses] == [ok_a, ok_b], f"seed {seed} step {step}"
        assert response.allowed == (ok_a and ok_b)
        if ok_a and ok_b:
            first.used += cost_a
            second.used += cost_b
        assert [s.remaining for s in response.statuses] == [first.remaining(), second.remaining()]
    rl.close()
