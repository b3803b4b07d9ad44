"""The difference from envoyproxy/ratelimit: every descriptor of a request is decided by one atomic
script, so a denied request consumes nothing (the reference counts every descriptor separately, so
a denied request still uses up the others' quota), concurrent requests never over-admit, and
descriptors sharing a counter see each other's hits. Also quota_mode and the algorithm extension."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .conftest import EnvoyCoord
from .helpers import OK, OVER_LIMIT, d, statuses

MARKETING = d(("message_type", "marketing"), ("to_number", "2061111111"))
NUMBER = d(("to_number", "2061111111"))


def remaining(envoy: EnvoyCoord, domain: str, *descriptors: object, hits: int = 0) -> list[int]:
    return [s.remaining for s in statuses(envoy.rls(domain, *descriptors, hits=hits))]


def test_a_denied_request_does_not_consume_its_other_descriptors(envoy: EnvoyCoord) -> None:
    def calls() -> tuple[list[int], list[int], list[int]]:
        codes = [envoy.rls("messaging", MARKETING, NUMBER).overall_code for _ in range(8)]
        return codes, remaining(envoy, "messaging", MARKETING, NUMBER), remaining(envoy, "messaging", NUMBER)

    (codes, denied, probe), _ = envoy.window(86_400, calls)
    assert codes == [OK] * 5 + [OVER_LIMIT] * 3
    assert denied == [0, 95]
    # Five allowed requests and this probe: 94 left. envoyproxy/ratelimit would leave 90 (its four
    # denied requests counted on the number too).
    assert probe == [94]


def test_concurrent_requests_admit_exactly_the_limit_and_consume_only_for_them(envoy: EnvoyCoord) -> None:
    def calls() -> tuple[list[int], list[int]]:
        with ThreadPoolExecutor(16) as pool:
            codes = list(
                pool.map(lambda _: envoy.rls("messaging", MARKETING, NUMBER).overall_code, range(48))
            )
        return codes, remaining(envoy, "messaging", NUMBER)

    (codes, probe), _ = envoy.window(86_400, calls)
    assert codes.count(OK) == 5 and codes.count(OVER_LIMIT) == 43
    assert probe == [94]


def test_descriptors_sharing_a_counter_see_each_others_hits(envoy: EnvoyCoord) -> None:
    azure = (("azure", "y"),)

    def calls() -> list[tuple[int, list[int]]]:
        replies = [
            envoy.rls("internal", d(*azure, hits=60), d(*azure, hits=60)),  # 120 > 100: denied whole
            envoy.rls("internal", d(*azure)),
            envoy.rls("internal", d(*azure, hits=40), d(*azure, hits=40)),  # 1 + 80 fit
            envoy.rls("internal", d(*azure)),
        ]
        return [(r.overall_code, [s.limit_remaining for s in r.statuses]) for r in replies]

    seen, _ = envoy.window(60, calls)
    assert seen[0][0] == OVER_LIMIT
    assert seen[0][1] == [100, 0]  # before its hits: the denied request took nothing
    assert seen[1] == (OK, [99])
    assert seen[2] == (OK, [59, 19])
    assert seen[3] == (OK, [18])


def test_a_shadow_rule_over_its_limit_neither_denies_nor_consumes(envoy: EnvoyCoord) -> None:
    a = (("service", "auth-service"), ("user", "user-a"))  # 10/s, shadow_mode
    b = (("service", "auth-service"), ("user", "user-b"))  # 20/s

    def calls() -> tuple[tuple[int, list[tuple[int, int]]], list[int]]:
        reply = envoy.rls("example6", d(*a, hits=11), d(*b))
        return (reply.overall_code, [(s.code, s.limit_remaining) for s in reply.statuses]), remaining(
            envoy, "example6", d(*a), d(*b)
        )

    ((code, got), after), _ = envoy.window(1, calls)
    assert code == OK and got == [(OK, 0), (OK, 19)]  # over, answered OK; the other one counted
    assert after == [9, 18]  # the shadow rule's eleven hits were not counted


def test_quota_mode_denies_only_when_every_quota_descriptor_is_over(envoy: EnvoyCoord) -> None:
    def calls() -> list[tuple[int, list[tuple[int, int]]]]:
        replies = [
            envoy.rls("coord", d(("quota_a", "1")), d(("quota_b", "1"))),
            envoy.rls("coord", d(("quota_a", "1")), d(("quota_b", "2"))),  # a over, b fits: allowed
            envoy.rls("coord", d(("quota_a", "1")), d(("quota_b", "1"))),  # both over: denied
        ]
        return [(r.overall_code, [(s.code, s.limit_remaining) for s in r.statuses]) for r in replies]

    seen, _ = envoy.window(60, calls)
    assert seen[0] == (OK, [(OK, 0), (OK, 0)])
    assert seen[1] == (OK, [(OVER_LIMIT, 0), (OK, 0)])
    assert seen[2] == (OVER_LIMIT, [(OVER_LIMIT, 0), (OVER_LIMIT, 0)])


def test_gcra_and_sliding_window_rules(envoy: EnvoyCoord) -> None:
    """The algorithm extension: GCRA's first hit leaves its bucket full again one interval (6 s) later;
    both algorithms allow exactly the limit at once and report their reset to the millisecond."""

    def calls() -> dict[str, list[tuple[int, int, tuple[int, int]]]]:
        seen = {}
        for key in ("gcra", "sliding", "fixed"):
            replies = [envoy.rls("coord", d((key, "k"))) for _ in range(11)]
            seen[key] = [
                (s.code, s.limit_remaining, (s.duration_until_reset.seconds, s.duration_until_reset.nanos))
                for r in replies
                for s in r.statuses
            ]
        return seen

    seen, _ = envoy.window(60, calls)
    for key in ("gcra", "sliding", "fixed"):
        assert [code for code, _, _ in seen[key]] == [OK] * 10 + [OVER_LIMIT], key
        assert [left for _, left, _ in seen[key]] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0], key
    assert seen["gcra"][0][2] == (6, 0)  # 60 s / 10: one emission interval
    seconds, nanos = seen["gcra"][10][2]  # a full bucket: ten intervals less the time the hits took
    # Compared with the first hit's reset, not with a clock: ten hits push the reset further than one.
    assert (6, 0) < (seconds, nanos) <= (60, 0) and nanos % 1_000_000 == 0
    assert all(nanos == 0 for _, _, (_, nanos) in seen["fixed"])  # whole seconds, as the reference
