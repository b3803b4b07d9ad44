"""When Redis is down or hangs, each rule's failure mode decides, within the rate limit timeout.

The servers here wait up to 30 s for Redis and the checks carry a 10 s deadline: a check that is not
decided within the rate limit timeout fails with DEADLINE_EXCEEDED instead of answering, so an answer
with ``backend_unavailable`` is itself the proof that the rate limit timeout decided it.
"""

from __future__ import annotations

import os
import signal

from .helpers import FIXED_WINDOW, Limiter, desc, ms, pb, rule

CLOSED = rule(5, 60)
OPEN = rule(5, 60, FIXED_WINDOW, on_backend_error=pb.FAILURE_MODE_OPEN)


def test_stopped_redis_fails_closed_by_default_and_open_when_asked(redis_factory, start_coord):
    backing = redis_factory()
    server = start_coord(backing.url, redis_timeout=30.0, ratelimit_timeout=0.2)
    rl = Limiter(server.target)
    assert rl.one("k", CLOSED).allowed
    backing.stop()
    closed = rl.one("k", CLOSED)
    opened = rl.one("k", OPEN)
    both = rl.check(desc("a", CLOSED), desc("b", OPEN), mode=pb.MODE_INDEPENDENT)
    assert (closed.allowed, closed.backend_unavailable) == (False, True)
    assert ms(closed.retry_after) == 1000
    assert (opened.allowed, opened.backend_unavailable, opened.statuses[0].consumed) == (True, True, False)
    assert [s.allowed for s in both.statuses] == [False, True]
    assert not both.allowed
    assert closed.ratelimit_header == ""
    backing.start()
    fresh = rl.one("k", CLOSED)  # a restarted, empty Redis
    assert (fresh.allowed, fresh.backend_unavailable, fresh.remaining) == (True, False, 4)
    rl.close()


def test_hung_redis_is_decided_within_the_timeout(redis_factory, start_coord):
    backing = redis_factory()
    server = start_coord(backing.url, redis_timeout=30.0, ratelimit_timeout=0.15)
    rl = Limiter(server.target)
    assert rl.one("k", OPEN).allowed
    assert backing.proc is not None
    os.kill(backing.proc.pid, signal.SIGSTOP)
    try:
        # Redis never answers: waiting for it would run into each check's 10 s deadline (an error);
        # every one of them is answered, by its rule's failure mode, so the 0.15 s bound decided it.
        for _ in range(5):
            response = rl.one("k", OPEN)
            assert response.allowed and response.backend_unavailable
        closed = rl.one("k", CLOSED)
        assert not closed.allowed and closed.backend_unavailable
    finally:
        os.kill(backing.proc.pid, signal.SIGCONT)
    rl.close()
