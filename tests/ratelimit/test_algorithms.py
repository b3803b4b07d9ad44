"""Each algorithm's exact promise, checked against the Redis clock (never the test's clock)."""

from __future__ import annotations

import time

import pytest

from .helpers import (
    ALGORITHMS,
    FIXED_WINDOW,
    SLIDING_LOG,
    SLIDING_WINDOW,
    TOKEN_BUCKET,
    Limiter,
    all_keys,
    desc,
    ms,
    redis_now_ms,
    rule,
)

HOUR_MS = 3_600_000


@pytest.fixture
def rl(coord):
    limiter = Limiter(coord.target)
    yield limiter
    limiter.close()


def decided_ms(response) -> int:
    return int(response.decide_time.ToMilliseconds())


# -- token bucket (GCRA) ---------------------------------------------------------------------------


def test_token_bucket_allows_the_burst_at_once_then_one_per_interval(rl):
    r = rule(5, 3600, TOKEN_BUCKET, burst=3)  # one unit every 720 s, bucket of 3
    first = rl.one("tb", r)
    assert (first.allowed, first.remaining, ms(first.reset_after)) == (True, 2, 720_000)
    assert [rl.one("tb", r).remaining for _ in range(2)] == [1, 0]
    denied = rl.one("tb", r)
    assert not denied.allowed
    assert not denied.statuses[0].consumed
    assert denied.remaining == 0
    # The next unit fits when the first one's 720 s have drained.
    elapsed = decided_ms(denied) - decided_ms(first)
    assert abs(ms(denied.retry_after) - (720_000 - elapsed)) <= 1
    assert abs(ms(denied.reset_after) - (3 * 720_000 - elapsed)) <= 1


def test_token_bucket_refills_at_the_rate_after_retry_after(rl):
    r = rule(1, 1, TOKEN_BUCKET, burst=2)  # one unit per second
    assert [rl.one("refill", r).allowed for _ in range(3)] == [True, True, False]
    denied = rl.one("refill", r)
    assert 0 < ms(denied.retry_after) <= 1000
    time.sleep(ms(denied.retry_after) / 1000)
    assert rl.one("refill", r).allowed  # exactly one unit came back ...
    again = rl.one("refill", r)
    assert not again.allowed  # ... and no more
    assert ms(again.retry_after) > 900


def test_token_bucket_burst_defaults_to_limit_and_high_rates_stay_exact(rl):
    r = rule(10_000, 1, TOKEN_BUCKET)  # 100 us per unit
    first = rl.one("fast", r, cost=10_000)
    assert first.allowed and first.remaining == 0
    denied = rl.one("fast", r, cost=10_000)  # the whole bucket again: 1 s after the first
    assert not denied.allowed
    elapsed = decided_ms(denied) - decided_ms(first)
    assert abs(ms(denied.retry_after) - (1000 - elapsed)) <= 1


def test_token_bucket_cost(rl):
    r = rule(10, 3600, TOKEN_BUCKET)
    assert rl.one("c", r, cost=4).remaining == 6
    big = rl.one("c", r, cost=7)
    assert not big.allowed and big.remaining == 6
    assert rl.one("c", r, cost=6).remaining == 0


# -- fixed window ----------------------------------------------------------------------------------


@pytest.mark.parametrize("period_ms", [HOUR_MS, 7_000, 5_400_000])
def test_fixed_window_allows_exactly_limit_per_epoch_aligned_window(rl, period_ms):
    r = rule(3, period_ms / 1000, FIXED_WINDOW)
    # Five checks must fall in one window. A 7 s window starts in its first half (it could end
    # mid-test on a loaded machine); should a boundary still fall inside, try again on a new key.
    for attempt in range(3):
        probe = rl.one(f"fw-probe{attempt}", r, dry_run=True)
        into = decided_ms(probe) % period_ms
        if period_ms <= 10_000 and into > period_ms // 2:  # (only short windows are waited out)
            time.sleep((period_ms - into) / 1000)
        responses = [rl.one(f"fw{attempt}", r) for _ in range(5)]
        first = responses[0]
        window_end = (decided_ms(first) // period_ms + 1) * period_ms
        if decided_ms(responses[-1]) < window_end - 1:
            break
    else:
        pytest.fail("a window boundary fell inside each of three tries")
    assert [x.allowed for x in responses] == [True, True, True, False, False]
    assert [x.remaining for x in responses] == [2, 1, 0, 0, 0]
    denied = responses[3]
    expected = window_end - decided_ms(denied)
    assert abs(ms(denied.retry_after) - expected) <= 1
    assert ms(denied.reset_after) == ms(denied.retry_after)


def test_fixed_window_allows_again_in_the_next_window(rl):
    r = rule(2, 0.3, FIXED_WINDOW)
    while True:  # start early in a window so three checks cannot straddle a boundary
        probe = rl.one("probe", r, dry_run=True)
        if decided_ms(probe) % 300 < 150:
            break
        time.sleep((300 - decided_ms(probe) % 300) / 1000)
    results = [rl.one("next", r) for _ in range(3)]
    assert [x.allowed for x in results] == [True, True, False]
    time.sleep(ms(results[2].retry_after) / 1000)
    assert rl.one("next", r).allowed


# -- sliding log -----------------------------------------------------------------------------------


def test_sliding_log_is_exact_and_retry_names_the_entry_that_must_leave(rl):
    r = rule(3, 3600, SLIDING_LOG)
    one = rl.one("log", r)
    two = rl.one("log", r, cost=2)
    assert (one.remaining, two.remaining) == (2, 0)
    denied = rl.one("log", r, cost=2)
    assert not denied.allowed
    # Two units must leave: the first is one's, the second is two's (the 2nd oldest entry).
    assert abs(ms(denied.retry_after) - (decided_ms(two) + HOUR_MS - decided_ms(denied))) <= 1
    one_more = rl.one("log", r)
    assert abs(ms(one_more.retry_after) - (decided_ms(one) + HOUR_MS - decided_ms(one_more))) <= 1
    assert abs(ms(one_more.reset_after) - (decided_ms(two) + HOUR_MS - decided_ms(one_more))) <= 1


def test_sliding_log_counts_a_true_sliding_window(rl):
    r = rule(2, 0.4, SLIDING_LOG)
    first = rl.one("slide", r)
    assert first.allowed
    time.sleep(0.2)
    assert rl.one("slide", r).allowed
    denied = rl.one("slide", r)
    assert not denied.allowed
    time.sleep(ms(denied.retry_after) / 1000)
    # The first unit left the window; the second is still in it.
    assert rl.one("slide", r).allowed
    assert not rl.one("slide", r).allowed


# -- sliding window counter ------------------------------------------------------------------------


def test_sliding_window_counts_the_current_window_exactly_with_no_history(rl):
    r = rule(5, 3600, SLIDING_WINDOW)
    responses = [rl.one("sw", r) for _ in range(6)]
    assert [x.remaining for x in responses[:5]] == [4, 3, 2, 1, 0]
    denied = responses[5]
    assert not denied.allowed
    now = decided_ms(denied)
    start = now // HOUR_MS * HOUR_MS
    # The 5 units become the previous window's count and must decay to 4: 1/5 into the next window.
    expected = start + 2 * HOUR_MS - 4 * HOUR_MS // 5 - now
    assert abs(ms(denied.retry_after) - expected) <= 1


def test_sliding_window_weights_the_previous_window(coord, rl):
    limit, period_ms = 1000, HOUR_MS
    r = rule(limit, period_ms / 1000, SLIDING_WINDOW)
    # Give the key a full previous window: the estimate is limit x (unexpired share of it).
    rl.one("weighted", r)
    [(key, _)] = list(all_keys(coord))
    window = redis_now_ms(coord) // period_ms
    with coord.redis() as client:
        client.hset(key, mapping={"w": window - 1, "c": limit, "p": 0})
    before = redis_now_ms(coord)
    peek = rl.one("weighted", r, dry_run=True)
    after = redis_now_ms(coord)

    def free_at(t_ms: int) -> int:
        return int(limit * (t_ms % period_ms) / period_ms)

    assert free_at(before) <= peek.remaining <= free_at(after)
    assert rl.one("weighted", r, cost=peek.remaining).allowed if peek.remaining else True
    denied = rl.one("weighted", r)
    assert not denied.allowed
    now = decided_ms(denied)
    used = peek.remaining
    # Allowed once limit x (1 - f) + used + 1 <= limit, i.e. at f = (used + 1) / limit.
    expected = (used + 1) * period_ms / limit - now % period_ms
    assert abs(ms(denied.retry_after) - expected) <= 2


# -- every algorithm -------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_dry_run_consumes_nothing_and_writes_nothing(coord, rl, algo):
    r = rule(3, 3600, algo)
    peek = rl.one("dry", r, dry_run=True, cost=2)
    assert (peek.allowed, peek.statuses[0].consumed, peek.remaining) == (True, False, 3)
    assert list(all_keys(coord)) == []
    rl.one("dry", r, cost=2)
    again = rl.one("dry", r, dry_run=True)
    assert (again.allowed, again.remaining) == (True, 1)
    denied = rl.one("dry", r, dry_run=True, cost=2)
    assert not denied.allowed and ms(denied.retry_after) > 0
    assert rl.one("dry", r).remaining == 0  # the dry runs took nothing


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_written_key_has_a_ttl_ending_when_state_is_empty(coord, rl, algo):
    r = rule(4, 60, algo)
    rl.one("ttl", r, cost=3)
    rl.one("ttl", r, cost=3)  # a denial writes nothing
    keys = list(all_keys(coord))
    assert len(keys) == 1
    [(key, pttl)] = keys
    assert key.startswith(b"coord:default:ratelimit:{ttl}:")
    longest = {TOKEN_BUCKET: 45_000, SLIDING_WINDOW: 120_000, SLIDING_LOG: 60_000, FIXED_WINDOW: 60_000}
    assert 0 < pttl <= longest[algo]


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_reset_clears_state(rl, algo):
    r = rule(2, 3600, algo)
    rl.one("login:alice", r, cost=2)
    assert not rl.one("login:alice", r).allowed
    assert rl.reset("login:alice") is True
    assert rl.one("login:alice", r).remaining == 1
    assert rl.reset("login:alice") is True
    assert rl.reset("login:alice") is False


def test_reset_is_per_scope(rl):
    r = rule(1, 3600, FIXED_WINDOW)
    rl.one("k", r, scope="a")
    rl.one("k", r, scope="b")
    assert rl.reset("k", scope="a")
    assert rl.one("k", r, scope="a").allowed
    assert not rl.one("k", r, scope="b").allowed
    assert not rl.reset("k")  # the default scope (the key itself) never had state


def test_same_key_different_algorithms_have_separate_state(rl):
    assert rl.one("same", rule(1, 3600, FIXED_WINDOW)).allowed
    assert rl.one("same", rule(1, 3600, SLIDING_LOG)).allowed
    assert not rl.one("same", rule(1, 3600, FIXED_WINDOW)).allowed


def test_headers(rl):
    response = rl.check(
        desc("user:1", rule(10, 60, FIXED_WINDOW, name="per-minute")),
        desc("user:1", rule(100, 0.5)),
        cost=3,
    )
    reset = -(-ms(response.statuses[0].reset_after) // 1000)
    assert response.ratelimit_policy_header == '"per-minute";q=10;w=60, "d1";q=100;w=1'
    assert response.ratelimit_header == f'"per-minute";r=7;t={reset}, "d1";r=97;t=1'
    assert (response.limit, response.remaining) == (10, 7)
    assert [s.name for s in response.statuses] == ["per-minute", "d1"]
