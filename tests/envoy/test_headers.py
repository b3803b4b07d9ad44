"""COORD_ENVOY_RATELIMIT_HEADERS: RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset in
response_headers_to_add, from the status envoyproxy/ratelimit picks (the last enforced over-limit
descriptor, else the first with the least remaining), off by default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..conftest import CoordThread, CoordUnderTest
from .conftest import EnvoyCoord
from .examples import EXAMPLES
from .helpers import Rls, d, write

MARKETING = d(("message_type", "marketing"), ("to_number", "2061111111"))
NUMBER = d(("to_number", "2061111111"))


def headers(reply: object) -> dict[str, str]:
    return {h.key: h.value for h in reply.response_headers_to_add}  # type: ignore[attr-defined]


def test_headers_come_from_the_descriptor_closest_to_its_limit(envoy: EnvoyCoord) -> None:
    rls = envoy.rls

    def calls() -> list[dict[str, str]]:
        first = rls("messaging", MARKETING, NUMBER)
        for _ in range(4):
            rls("messaging", MARKETING, NUMBER)
        sixth = rls("messaging", NUMBER, MARKETING)  # the over-limit one wins, wherever it is
        return [headers(first), headers(sixth)]

    (first, sixth), window = envoy.window(86_400, calls)
    low, high = window.reset_bounds(86_400)
    assert first.keys() == {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
    assert (first["RateLimit-Limit"], first["RateLimit-Remaining"]) == ("5", "4")
    assert low <= int(first["RateLimit-Reset"]) <= high
    assert (sixth["RateLimit-Limit"], sixth["RateLimit-Remaining"]) == ("5", "0")
    assert low <= int(sixth["RateLimit-Reset"]) <= high


def test_unlimited_and_unmatched_descriptors_give_no_headers(envoy: EnvoyCoord) -> None:
    def calls() -> tuple[dict[str, str], dict[str, str]]:
        mixed = envoy.rls("internal", d(("ldap", "x")), d(("azure", "y")), d(("other", "z")))
        alone = envoy.rls("internal", d(("ldap", "x")))
        return headers(mixed), headers(alone)

    (mixed, alone), window = envoy.window(60, calls)
    low, high = window.reset_bounds(60)
    assert (mixed["RateLimit-Limit"], mixed["RateLimit-Remaining"]) == ("100", "99")
    assert low <= int(mixed["RateLimit-Reset"]) <= high
    assert alone == {}


def test_a_gcra_reset_is_rounded_up_to_seconds(envoy: EnvoyCoord) -> None:
    reply = envoy.rls("coord", d(("gcra", "h")))
    assert headers(reply) == {"RateLimit-Limit": "10", "RateLimit-Remaining": "9", "RateLimit-Reset": "6"}


def test_headers_are_off_by_default(
    coord_single: CoordUnderTest, start_coord: Callable[..., CoordThread], tmp_path: Path
) -> None:
    folder = write(tmp_path / "conf", {"messaging.yaml": EXAMPLES["messaging"]})
    server = start_coord(coord_single.backing.url, envoy_ratelimit_config=str(folder))
    rls = Rls(server.target)
    try:
        reply = rls("messaging", MARKETING, NUMBER)
        assert reply.statuses[0].limit_remaining == 4 and not reply.response_headers_to_add
    finally:
        rls.close()
