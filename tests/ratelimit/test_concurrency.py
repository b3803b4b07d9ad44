"""Concurrent checks, through two Coord servers sharing one Redis, never allow more than the limit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from .helpers import ALGORITHMS, FIXED_WINDOW, Limiter, desc, pb, rule

CALLERS = 60
LIMIT = 17


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_parallel_checks_through_two_servers_allow_exactly_the_limit(coord, start_coord, algo):
    second = start_coord(coord.backing.url, redis_cluster=coord.kind == "cluster")
    limiters = [Limiter(coord.target), Limiter(second.target)]
    r = rule(LIMIT, 3600, algo)

    def one(i: int) -> bool:
        return limiters[i % 2].one("hot", r).allowed

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(CALLERS)))
    assert sum(results) == LIMIT
    for limiter in limiters:
        limiter.close()


def test_parallel_multi_descriptor_checks_never_exceed_any_limit(coord):
    rl = Limiter(coord.target)
    per_user, shared = rule(3, 3600), rule(10, 3600, FIXED_WINDOW)

    def one(i: int) -> pb.CheckResponse:
        return rl.check(desc(f"user:{i % 6}", per_user), desc("shared", shared), scope="org")

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(one, range(CALLERS)))
    allowed = [i for i, x in enumerate(responses) if x.allowed]
    assert len(allowed) == 10  # the shared limit binds; no denied check consumed anything
    for user in range(6):
        assert sum(1 for i in allowed if i % 6 == user) <= 3
    assert all(all(s.consumed for s in x.statuses) == x.allowed for x in responses)
    rl.close()
