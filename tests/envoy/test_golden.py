"""envoyproxy/ratelimit's README examples through Coord's RateLimitService, on a single node and a
Cluster: the same config and the same requests give the same overall_code and per-descriptor
statuses (current_limit, limit_remaining, duration_until_reset) as the reference documents.

Fixed windows are aligned to the unit, so each sequence runs within one window of the Redis clock
(``EnvoyCoord.window``), and duration_until_reset is checked against that window's bounds.
"""

from __future__ import annotations

import grpc
import pytest

from .conftest import EnvoyCoord
from .helpers import (
    OK,
    OVER_LIMIT,
    SECONDS,
    Status,
    Unit,
    Window,
    d,
    no_limit,
    statuses,
    unlimited,
)

SECOND, MINUTE, HOUR, DAY = Unit.SECOND, Unit.MINUTE, Unit.HOUR, Unit.DAY


def limited(code: int, limit: int, unit: int, remaining: int, name: str = "") -> Status:
    """The status of a limited descriptor; its duration_until_reset is checked by :func:`same`."""
    return Status(code, limit, unit, name, remaining, None)


def same(actual: list[Status], expected: list[Status], window: Window) -> None:
    """``actual == expected``, duration_until_reset (whole seconds: the reference's ``unit - now %
    unit``) within the window's bounds for each limited status."""
    assert len(actual) == len(expected), actual
    for got, want in zip(actual, expected, strict=True):
        if want.limit is None:
            assert got == want
            continue
        assert got.reset is not None and got.unit is not None, got
        low, high = window.reset_bounds(SECONDS[got.unit])
        seconds, nanos = got.reset
        assert nanos == 0 and low <= seconds <= high, (got, low, high)
        assert (got.code, got.limit, got.unit, got.name, got.remaining) == (
            want.code, want.limit, want.unit, want.name, want.remaining,
        )  # fmt: skip


def test_example1_one_limit_per_database(envoy: EnvoyCoord) -> None:
    rls = envoy.rls

    def calls() -> list[list[Status]]:
        return [
            statuses(rls("mongo_cps", d(("database", "users")))),
            statuses(rls("mongo_cps", d(("database", "default")))),  # its own limit and counter
            statuses(rls("mongo_cps", d(("database", "users")), hits=498)),
            statuses(rls("mongo_cps", d(("database", "users")))),
            statuses(rls("mongo_cps", d(("database", "users")))),
            statuses(rls("mongo_cps", d(("database", "other")))),  # no rule
        ]

    seen, window = envoy.window(1, calls)
    same(seen[0], [limited(OK, 500, SECOND, 499)], window)
    same(seen[1], [limited(OK, 500, SECOND, 499)], window)
    same(seen[2], [limited(OK, 500, SECOND, 1)], window)
    same(seen[3], [limited(OK, 500, SECOND, 0)], window)
    same(seen[4], [limited(OVER_LIMIT, 500, SECOND, 0)], window)
    assert seen[5] == [no_limit()]


def test_example2_nested_descriptors_and_several_per_request(envoy: EnvoyCoord) -> None:
    rls = envoy.rls
    marketing = d(("message_type", "marketing"), ("to_number", "2061111111"))
    number = d(("to_number", "2061111111"))

    def calls() -> list[tuple[int, list[Status]]]:
        replies = [rls("messaging", marketing, number) for _ in range(6)]
        replies.append(rls("messaging", d(("message_type", "marketing"), ("to_number", "2062222222"))))
        return [(r.overall_code, statuses(r)) for r in replies]

    seen, window = envoy.window(86_400, calls)
    for n in range(5):
        code, got = seen[n]
        assert code == OK
        same(got, [limited(OK, 5, DAY, 4 - n), limited(OK, 100, DAY, 99 - n)], window)
    code, got = seen[5]  # the sixth marketing message of the day
    assert code == OVER_LIMIT
    # The reference would answer 94 for the second descriptor: it counts it although the request is
    # denied. Coord's denied request consumes nothing, so 95 remain (test_atomic.py).
    same(got, [limited(OVER_LIMIT, 5, DAY, 0), limited(OK, 100, DAY, 95)], window)
    code, got = seen[6]  # another number has its own five
    assert code == OK
    same(got, [limited(OK, 5, DAY, 4)], window)


def test_example3_most_specific_match_and_a_blocked_address(envoy: EnvoyCoord) -> None:
    rls = envoy.rls

    def calls() -> list[tuple[int, list[Status]]]:
        replies = [rls("edge_proxy_per_ip", d(("remote_address", "50.0.0.1"))) for _ in range(11)]
        replies.append(rls("edge_proxy_per_ip", d(("remote_address", "50.0.0.5"))))
        replies.append(rls("edge_proxy_per_ip", d(("remote_address", "50.0.0.5")), hits=0))
        return [(r.overall_code, statuses(r)) for r in replies]

    seen, window = envoy.window(1, calls)
    for n in range(10):
        assert seen[n][0] == OK
        same(seen[n][1], [limited(OK, 10, SECOND, 9 - n)], window)
    assert seen[10][0] == OVER_LIMIT
    same(seen[10][1], [limited(OVER_LIMIT, 10, SECOND, 0)], window)
    assert seen[11][0] == OVER_LIMIT  # requests_per_unit: 0
    same(seen[11][1], [limited(OVER_LIMIT, 0, SECOND, 0)], window)
    # hits_addend 0 is read as 1 (the reference's backward compatibility): still blocked.
    assert seen[12][0] == OVER_LIMIT


def test_example4_the_request_depth_must_be_the_config_depth(envoy: EnvoyCoord) -> None:
    rls = envoy.rls
    deep = d(("key", "value"), ("subkey", "subvalue"))

    def calls() -> list[list[Status]]:
        return [
            statuses(rls("example4", deep)),
            statuses(rls("example4b", deep)),
            statuses(rls("example4", d(("key", "value")))),
            statuses(rls("example4b", d(("key", "value")))),
        ]

    seen, window = envoy.window(1, calls)
    assert seen[0] == [no_limit()]  # two entries do not match a one-level rule
    same(seen[1], [limited(OK, 300, SECOND, 299)], window)
    same(seen[2], [limited(OK, 300, SECOND, 299)], window)
    assert seen[3] == [no_limit()]  # one entry does not match a two-level rule


def test_example5_unlimited_is_answered_without_redis(envoy: EnvoyCoord) -> None:
    rls = envoy.rls

    def calls() -> tuple[int, list[Status], list[Status]]:
        both = rls("internal", d(("ldap", "x")), d(("azure", "y")))
        alone = rls("internal", d(("ldap", "x")))
        return both.overall_code, statuses(both), statuses(alone)

    (code, both, alone), window = envoy.window(60, calls)
    assert code == OK
    same(both, [unlimited(), limited(OK, 100, MINUTE, 99)], window)
    assert alone == [unlimited()]
    keys = envoy.keys()  # only azure's counter exists
    assert len(keys) == 1 and keys[0].endswith(":5:azure:1:y"), keys


def test_example6_shadow_mode_never_limits_but_counts(envoy: EnvoyCoord) -> None:
    rls = envoy.rls
    a = d(("service", "auth-service"), ("user", "user-a"))
    b = d(("service", "auth-service"), ("user", "user-b"))

    def calls() -> tuple[list[tuple[int, list[Status]]], list[tuple[int, list[Status]]]]:
        shadowed = [rls("example6", a) for _ in range(11)]
        enforced = [rls("example6", b) for _ in range(21)]
        return [(r.overall_code, statuses(r)) for r in shadowed], [
            (r.overall_code, statuses(r)) for r in enforced
        ]

    (shadowed, enforced), window = envoy.window(1, calls)
    assert [code for code, _ in shadowed] == [OK] * 11
    same(shadowed[9][1], [limited(OK, 10, SECOND, 0)], window)
    same(shadowed[10][1], [limited(OK, 10, SECOND, 0)], window)  # over, in shadow mode
    assert [code for code, _ in enforced] == [OK] * 20 + [OVER_LIMIT]
    same(enforced[20][1], [limited(OVER_LIMIT, 20, SECOND, 0)], window)


def test_example7_replaces_drops_the_named_limit_without_touching_it(envoy: EnvoyCoord) -> None:
    rls = envoy.rls
    one = d(("key_1", "value_1"), ("user", "bkthomps"))
    two = d(("key_2", "value_2"), ("user", "bkthomps"))

    def calls() -> list[list[Status]]:
        return [
            statuses(rls("example7", one, two)),
            statuses(rls("example7", one)),
            statuses(rls("example7", two)),
        ]

    seen, window = envoy.window(1, calls)
    same(seen[0], [no_limit(), limited(OK, 10, SECOND, 9)], window)
    # The replaced limit was not counted by the request that replaced it.
    same(seen[1], [limited(OK, 5, SECOND, 4, name="specific_limit")], window)
    same(seen[2], [limited(OK, 10, SECOND, 8)], window)


def test_example8_detailed_metric_limits_as_usual(envoy: EnvoyCoord) -> None:
    rls = envoy.rls

    def calls() -> list[list[Status]]:
        return [
            statuses(rls("example8", d(("key1", "unspecified_value")))),
            statuses(rls("example8", d(("key1", "unspecified_value2")))),
            statuses(rls("example8", d(("key1", "value1")))),
        ]

    seen, window = envoy.window(60, calls)
    same(seen[0], [limited(OK, 10, MINUTE, 9)], window)
    same(seen[1], [limited(OK, 10, MINUTE, 9)], window)  # a counter per value
    same(seen[2], [limited(OK, 20, MINUTE, 19)], window)


@pytest.mark.parametrize(
    ("key", "matching", "others"),
    [
        ("key1", ("value1", "value2", "valueXYZ"), ("other", "valu")),
        ("path", ("/api/123/action", "/api/user-id/action"), ("/api/123/other",)),
        ("route", ("/api/v1/resource/123/action", "/api/v2/resource/456/action"), ("/api/v1/resource",)),
    ],
)
def test_example9_wildcard_values(
    envoy: EnvoyCoord, key: str, matching: tuple[str, ...], others: tuple[str, ...]
) -> None:
    rls = envoy.rls

    def calls() -> tuple[list[list[Status]], list[list[Status]]]:
        return (
            [statuses(rls("example9", d((key, value)))) for value in matching],
            [statuses(rls("example9", d((key, value)))) for value in others],
        )

    (hit, missed), window = envoy.window(60, calls)
    for got in hit:  # every value its own counter: each has used one
        same(got, [limited(OK, 20, MINUTE, 19)], window)
    assert missed == [[no_limit()]] * len(others)


def test_example10_value_to_metric_limits_as_usual(envoy: EnvoyCoord) -> None:
    rls = envoy.rls

    def calls() -> list[list[Status]]:
        return [
            statuses(rls("example10", d(("route", "api"), ("http_method", "GET"), ("subject_id", "123")))),
            statuses(rls("example10", d(("route", "web"), ("http_method", "POST"), ("subject_id", "456")))),
            statuses(
                rls(
                    "example10_wildcard",
                    d(("user", "alice"), ("action", "readfile"), ("resource", "documents")),
                )
            ),
            statuses(
                rls(
                    "example10_wildcard", d(("user", "alice"), ("action", "write"), ("resource", "documents"))
                )
            ),
        ]

    seen, window = envoy.window(60, calls)
    same(seen[0], [limited(OK, 60, MINUTE, 59)], window)
    same(seen[1], [limited(OK, 60, MINUTE, 59)], window)
    same(seen[2], [limited(OK, 100, MINUTE, 99)], window)
    assert seen[3] == [no_limit()]


def test_example11_share_threshold(envoy: EnvoyCoord) -> None:
    rls = envoy.rls

    def calls() -> list[tuple[int, list[Status]]]:
        replies = [
            rls("example11", d(("files", "files/a.pdf")), hits=5),
            rls("example11", d(("files", "files/b.csv")), hits=5),
            rls("example11", d(("files", "files/c.txt"))),  # the shared ten are used up
            rls("example11", d(("files_no_share", "files_no_share/a.pdf")), hits=10),
            rls("example11", d(("files_no_share", "files_no_share/a.pdf"))),
            rls("example11", d(("files_no_share", "files_no_share/b.csv"))),  # its own ten
        ]
        return [(r.overall_code, statuses(r)) for r in replies]

    seen, window = envoy.window(3600, calls)
    assert [code for code, _ in seen] == [OK, OK, OVER_LIMIT, OK, OVER_LIMIT, OK]
    same(seen[1][1], [limited(OK, 10, HOUR, 0)], window)
    same(seen[2][1], [limited(OVER_LIMIT, 10, HOUR, 0)], window)
    same(seen[5][1], [limited(OK, 10, HOUR, 9)], window)


def test_limit_override_and_per_descriptor_hits_addend(envoy: EnvoyCoord) -> None:
    """The reference's TestConfigLimitOverride and its per-descriptor hits_addend (0: check only)."""
    rls = envoy.rls
    entries = (("key1", "value1"), ("subkey1", "something"))

    def calls() -> list[tuple[int, list[Status]]]:
        replies = [
            rls("messaging", d(*entries, limit=(10, Unit.DAY))),  # no rule would match: the override applies
            rls("messaging", d(*entries, limit=(10, Unit.DAY), hits=0)),  # a look, nothing counted
            rls("messaging", d(*entries, limit=(10, Unit.DAY), hits=9), hits=3),  # its own addend wins
            rls("messaging", d(*entries, limit=(10, Unit.DAY), hits=0)),
            rls("messaging", d(*entries, limit=(10, Unit.DAY))),
            rls("unknown_domain", d(*entries, limit=(10, Unit.DAY))),  # an unknown domain limits nothing
        ]
        return [(r.overall_code, statuses(r)) for r in replies]

    seen, window = envoy.window(86_400, calls)
    same(seen[0][1], [limited(OK, 10, DAY, 9)], window)
    same(seen[1][1], [limited(OK, 10, DAY, 9)], window)
    same(seen[2][1], [limited(OK, 10, DAY, 0)], window)
    same(seen[3][1], [limited(OK, 10, DAY, 0)], window)  # nothing left, nothing asked
    assert seen[4][0] == OVER_LIMIT
    assert seen[5] == (OK, [no_limit()])


def test_unknown_domain_and_unmatched_descriptors_are_ok(envoy: EnvoyCoord) -> None:
    reply = envoy.rls("nobody", d(("a", "b")), d(("c", "d")))
    assert reply.overall_code == OK and statuses(reply) == [no_limit(), no_limit()]
    assert not reply.response_headers_to_add  # no limited descriptor: no headers


@pytest.mark.parametrize(
    ("domain", "descriptors", "field"), [("", 1, "domain"), ("messaging", 0, "descriptors")]
)
def test_empty_domain_or_no_descriptor_is_invalid(
    envoy: EnvoyCoord, domain: str, descriptors: int, field: str
) -> None:
    """The reference answers these with an error too ("rate limit domain must not be empty", "rate
    limit descriptor list must not be empty")."""
    with pytest.raises(grpc.RpcError) as caught:
        envoy.rls(domain, *[d(("to_number", "1"))] * descriptors)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"{field}: ")
