"""The invariant checkers of ``history.py``: each accepts what a correct server may do (including the
uncertainty of failed calls) and rejects each kind of violation with a message naming it. Times here
are made-up readings: only their order matters to the checkers."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from coord_client import errors

from .history import (
    History,
    check_cache,
    check_errors,
    check_events,
    check_locks,
    check_rate_limit,
    position,
    status_name,
)


def clock(*readings: float) -> History:
    """A history whose ``now()`` returns ``readings`` in turn."""
    it = iter(readings)
    return History(clock=lambda: next(it))


# ---------------------------------------------------------------- locks


def test_locks_one_after_another_pass() -> None:
    h = History()
    a = h.lock_granted("L", "a", 1, requested_at=0.0, granted_at=0.1, lease_until=2.0)
    h.lock_released(a, at=0.5)
    h.lock_granted("L", "b", 2, requested_at=0.4, granted_at=0.6, lease_until=2.4)
    h.lock_granted("M", "c", 1, requested_at=0.0, granted_at=0.1, lease_until=9.0)  # another lock
    check_locks(h)


def test_a_grant_after_the_lease_ran_out_passes_without_a_release() -> None:
    h = History()
    h.lock_granted("L", "a", 1, requested_at=0.0, granted_at=0.1, lease_until=2.0)  # never released
    h.lock_granted("L", "b", 2, requested_at=1.0, granted_at=2.5, lease_until=5.0)
    check_locks(h)


def test_overlapping_exclusive_grants_fail() -> None:
    h = History()
    h.lock_granted("L", "a", 1, requested_at=0.0, granted_at=0.1, lease_until=2.0)
    h.lock_granted("L", "b", 2, requested_at=0.5, granted_at=1.0, lease_until=3.0)
    with pytest.raises(AssertionError, match=r"lock 'L': grants overlap: a token 1 .* and b token 2"):
        check_locks(h)


def test_shared_grants_may_overlap_but_not_with_an_exclusive_one() -> None:
    h = History()
    h.lock_granted("L", "r1", 1, requested_at=0.0, granted_at=0.1, lease_until=2.0, mode="shared")
    h.lock_granted("L", "r2", 2, requested_at=0.0, granted_at=0.2, lease_until=2.0, mode="shared")
    check_locks(h)
    h.lock_granted("L", "w", 3, requested_at=0.0, granted_at=1.0, lease_until=4.0)
    with pytest.raises(AssertionError, match="2 violation"):
        check_locks(h)


def test_fencing_tokens_must_grow_in_real_time_order_and_never_repeat() -> None:
    h = History()
    a = h.lock_granted("L", "a", 5, requested_at=0.0, granted_at=0.1, lease_until=2.0)
    h.lock_released(a, at=0.2)
    h.lock_granted("L", "b", 4, requested_at=0.3, granted_at=0.4, lease_until=2.0)  # requested after a
    with pytest.raises(AssertionError, match="fencing token went back"):
        check_locks(h)
    h = History()
    a = h.lock_granted("L", "a", 5, requested_at=0.0, granted_at=0.1, lease_until=2.0)
    h.lock_released(a, at=0.2)
    h.lock_granted("L", "b", 5, requested_at=0.3, granted_at=0.4, lease_until=2.0)
    with pytest.raises(AssertionError, match="fencing token given twice"):
        check_locks(h)


def test_concurrent_requests_may_get_tokens_in_either_order() -> None:
    h = History()
    a = h.lock_granted("L", "a", 2, requested_at=0.0, granted_at=0.3, lease_until=2.0)
    h.lock_released(a, at=0.35)
    h.lock_granted("L", "b", 1, requested_at=0.1, granted_at=0.2, lease_until=0.25)  # both in flight
    check_locks(h)


def test_an_extension_lengthens_the_lease() -> None:
    h = History()
    a = h.lock_granted("L", "a", 1, requested_at=0.0, granted_at=0.1, lease_until=1.0)
    h.lock_granted("L", "b", 2, requested_at=0.5, granted_at=1.5, lease_until=3.0)
    check_locks(h)
    h.lock_extended(a, 2.0)
    with pytest.raises(AssertionError, match="overlap"):
        check_locks(h)


# ---------------------------------------------------------------- rate limits


def decide(h: History, ms: int, allowed: bool = True, **rule: object) -> None:
    fields: dict[str, object] = {"limit": 3, "period": 1.0, "algorithm": "fixed_window", **rule}
    h.rate_decision("k", allowed=allowed, decide_time=ms, **fields)  # type: ignore[arg-type]


def test_fixed_window_within_the_limit_passes() -> None:
    h = History()
    for ms in (1000, 1200, 1999, 2000, 2001, 2002):
        decide(h, ms)
    decide(h, 2500, allowed=False)
    h.rate_decision("k", limit=3, period=1.0, allowed=False, decide_time=None, backend_unavailable=True)
    check_rate_limit(h)


def test_fixed_window_over_the_limit_fails() -> None:
    h = History()
    for ms in (1000, 1100, 1200, 1300):
        decide(h, ms)
    with pytest.raises(AssertionError, match=r"window starting 1000 ms admitted 4 > limit 3"):
        check_rate_limit(h)


def test_decide_time_as_a_datetime() -> None:
    h = History()
    for second in range(4):
        at = datetime(2030, 1, 1, 0, 0, 0, 100_000 * second, tzinfo=UTC)
        h.rate_decision("k", limit=3, period=1.0, allowed=True, decide_time=at)
    with pytest.raises(AssertionError, match="admitted 4 > limit 3"):
        check_rate_limit(h)


def test_admitted_without_redis_fails() -> None:
    h = History()
    h.rate_decision("k", limit=3, period=1.0, allowed=True, decide_time=None, backend_unavailable=True)
    with pytest.raises(AssertionError, match="admitted without a Redis decision"):
        check_rate_limit(h)


def test_sliding_log_counts_any_interval() -> None:
    h = History()
    for ms in (1500, 1600, 1700, 2400):  # 4 within 900 ms, across an aligned boundary
        decide(h, ms, algorithm="sliding_log")
    with pytest.raises(AssertionError, match="4 units admitted in the 1000 ms from 1500"):
        check_rate_limit(h)


def test_token_bucket_allows_burst_then_the_rate() -> None:
    h = History()
    for ms in (0, 1, 2, 334, 667, 1000):  # burst 3, then one per 333.3 ms
        decide(h, ms, algorithm="token_bucket")
    check_rate_limit(h)
    for ms in (1001, 1002, 1003):
        decide(h, ms, algorithm="token_bucket")
    with pytest.raises(AssertionError, match="token_bucket"):
        check_rate_limit(h)


# ---------------------------------------------------------------- events


def events_history() -> History:
    h = History()
    h.subscriber_started("s", "t", "100-0")
    h.event_published("t", "99-0", b"before")  # before the start: not owed
    for i in range(1, 6):
        h.event_published("t", f"101-{i}", f"e{i}".encode())
    return h


def test_every_event_delivered_passes() -> None:
    h = events_history()
    h.publish_unknown("t", b"maybe")
    for i in range(1, 6):
        h.event_delivered("s", f"101-{i}", f"e{i}".encode())
    check_events(h)


def test_a_gap_covers_what_it_reports() -> None:
    h = events_history()
    h.event_delivered("s", "101-1", b"e1")
    h.gap_reported("s", "101-1", "101-4")  # 101-2 and 101-3 are gone, and the subscriber knows
    h.event_delivered("s", "101-4", b"e4")
    h.event_delivered("s", "101-5", b"e5")
    check_events(h)


def test_a_silently_lost_event_fails() -> None:
    h = events_history()
    for i in (1, 2, 4, 5):
        h.event_delivered("s", f"101-{i}", f"e{i}".encode())
    with pytest.raises(AssertionError, match=r"1 acknowledged event\(s\) neither delivered .*first: 101-3"):
        check_events(h)


def test_a_gap_does_not_cover_its_ends() -> None:
    h = events_history()
    h.gap_reported("s", "101-1", "101-5")
    with pytest.raises(AssertionError, match="first: 101-1, 101-5"):
        check_events(h)


def test_events_out_of_order_twice_or_altered_fail() -> None:
    h = events_history()
    for i in (1, 2, 2, 3, 4, 5):
        h.event_delivered("s", f"101-{i}", f"e{i}".encode())
    with pytest.raises(AssertionError, match="out of order or repeated"):
        check_events(h)
    check_events(h, ordered=False)
    h = events_history()
    for i in range(1, 6):
        h.event_delivered("s", f"101-{i}", b"other" if i == 3 else f"e{i}".encode())
    with pytest.raises(AssertionError, match="event 101-3 delivered as b'other'"):
        check_events(h)


def test_volatile_sequences_and_stream_ids_compare_as_numbers() -> None:
    assert position("9-0") < position("10-0") < position("10-1")
    assert position(9) < position(10)
    h = History()
    h.subscriber_started("v", "t", 0)
    for seq in range(1, 5):
        h.event_published("t", seq)
    h.event_delivered("v", 1)
    h.gap_reported("v", 1, 4)
    h.event_delivered("v", 4)
    check_events(h)


# ---------------------------------------------------------------- cache


def test_reads_of_the_latest_acknowledged_write_pass() -> None:
    h = History()
    h.cache_write("k", b"1", started=0.0, finished=1.0, acked=True, version=1)
    h.cache_read("k", b"1", started=1.5, finished=2.0, version=1)
    h.cache_write("k", b"2", started=2.0, finished=3.0, acked=True, version=2)
    h.cache_read("k", b"2", started=3.5, finished=4.0, version=2)
    check_cache(h)


def test_a_read_concurrent_with_a_write_may_see_either() -> None:
    h = History()
    h.cache_write("k", b"1", started=0.0, finished=1.0, acked=True)
    h.cache_write("k", b"2", started=2.0, finished=4.0, acked=True)
    h.cache_read("k", b"1", started=3.0, finished=3.5)
    h.cache_read("k", b"2", started=3.0, finished=3.5)
    check_cache(h)


def test_a_write_of_unknown_outcome_may_be_read_at_any_later_time() -> None:
    h = History()
    h.cache_write("k", b"lost?", started=0.0, finished=1.0, acked=False)
    h.cache_write("k", b"1", started=2.0, finished=3.0, acked=True)
    h.cache_read("k", b"lost?", started=9.0, finished=9.5)  # applied late, after the other
    h.cache_read("k", None, started=0.5, finished=0.6)  # nothing acknowledged yet: a miss is fine
    check_cache(h)


def test_a_stale_read_fails() -> None:
    h = History()
    h.cache_write("k", b"1", started=0.0, finished=1.0, acked=True)
    h.cache_write("k", b"2", started=2.0, finished=3.0, acked=True)
    h.cache_read("k", b"1", started=4.0, finished=5.0)
    with pytest.raises(AssertionError, match=r"returned b'1', a superseded write .*latest .*: b'2'"):
        check_cache(h)


def test_a_lost_write_and_an_invented_value_fail() -> None:
    h = History()
    h.cache_write("k", b"1", started=0.0, finished=1.0, acked=True)
    h.cache_read("k", None, started=2.0, finished=2.5)
    h.cache_read("k", b"x", started=2.0, finished=2.5)
    h.cache_read("other", b"1", started=2.0, finished=2.5)
    with pytest.raises(AssertionError, match="3 violation") as raised:
        check_cache(h)
    assert "found nothing after acknowledged write" in str(raised.value)
    assert str(raised.value).count("a value nobody wrote") == 2


def test_an_older_version_fails() -> None:
    h = History()
    h.cache_write("k", b"same", started=0.0, finished=1.0, acked=True, version=5)
    h.cache_read("k", b"same", started=2.0, finished=2.5, version=4)
    with pytest.raises(AssertionError, match="version 4 < acknowledged 5"):
        check_cache(h)


# ---------------------------------------------------------------- failures and the clock


def test_only_backend_codes_are_allowed_failures() -> None:
    h = History()
    h.failed("cache.get", errors.Unavailable("down"))
    h.failed("lock.acquire", errors.DeadlineExceeded("late"))
    check_errors(h)
    h.failed("ratelimit.check", errors.Internal("boom"))
    with pytest.raises(AssertionError, match=r"ratelimit.check: INTERNAL"):
        check_errors(h)
    assert h.failure_codes() == {"UNAVAILABLE": 1, "DEADLINE_EXCEEDED": 1, "INTERNAL": 1}


def test_status_name_of_grpc_errors_and_others() -> None:
    class Failed(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.RESOURCE_EXHAUSTED

    assert status_name(Failed()) == "RESOURCE_EXHAUSTED"
    assert status_name(ValueError("x")) == "ValueError"


def test_now_reads_the_given_clock() -> None:
    h = clock(1.0, 2.0)
    grant = h.lock_granted("L", "a", 1, requested_at=0.0, lease_until=5.0)
    assert grant.granted_at == 1.0
    h.lock_released(grant)
    assert grant.end == 2.0
