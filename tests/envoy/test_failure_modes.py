"""COORD_ENVOY_RATELIMIT_FAILURE_MODE: what ShouldRateLimit answers while Redis is unreachable —
an UNAVAILABLE error (the default: Envoy's failure_mode_deny decides), OVER_LIMIT, or OK — and that
it decides again once Redis is back. What needs no Redis (no rule, unlimited) is answered as usual."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from coord_server.config import ConfigError

from ..conftest import CoordThread, CoordUnderTest, RedisProcess, wait_for
from .examples import EXAMPLES
from .helpers import OK, OVER_LIMIT, UNLIMITED, Rls, Unit, d, write

MARKETING = d(("message_type", "marketing"), ("to_number", "2061111111"))
SHADOW = d(("service", "auth-service"), ("user", "user-a"))  # example6: 10/s, shadow_mode
ENFORCED = d(("service", "auth-service"), ("user", "user-b"))  # example6: 20/s
LDAP = d(("ldap", "x"))


def _servers(
    tmp_path: Path, backing: RedisProcess, start_coord: Callable[..., CoordThread]
) -> dict[str, Rls]:
    folder = write(
        tmp_path / "conf", {f"{n}.yaml": EXAMPLES[n] for n in ("messaging", "example6", "internal")}
    )
    clients = {}
    for mode in ("error", "deny", "allow"):
        server = start_coord(
            backing.url,
            envoy_ratelimit_config=str(folder),
            envoy_ratelimit_failure_mode=mode,
            envoy_ratelimit_headers=True,
            ratelimit_timeout=0.3,
        )
        clients[mode] = Rls(server.target)
    return clients


def test_each_failure_mode_while_redis_is_down_then_decisions_again(
    tmp_path: Path, redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()
    clients = _servers(tmp_path, backing, start_coord)
    try:
        for rls in clients.values():
            assert rls("messaging", MARKETING).overall_code == OK  # connected and deciding
        backing.stop()

        with pytest.raises(grpc.RpcError) as caught:
            clients["error"]("messaging", MARKETING)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

        denied = clients["deny"]("messaging", MARKETING)
        assert denied.overall_code == OVER_LIMIT
        (over,) = denied.statuses
        assert over.code == OVER_LIMIT and over.current_limit.requests_per_unit == 5
        assert over.current_limit.unit == Unit.DAY and not over.HasField("duration_until_reset")
        assert not denied.response_headers_to_add  # nothing is known of the counters
        shadowed = clients["deny"]("example6", SHADOW, ENFORCED)
        assert [(s.code, s.current_limit.requests_per_unit) for s in shadowed.statuses] == [
            (OK, 10),  # a shadow rule never denies
            (OVER_LIMIT, 20),
        ]
        assert clients["deny"]("example6", SHADOW).overall_code == OK

        allowed = clients["allow"]("example6", SHADOW, ENFORCED)
        assert allowed.overall_code == OK
        assert [(s.code, s.current_limit.requests_per_unit) for s in allowed.statuses] == [(OK, 10), (OK, 20)]

        for rls in clients.values():  # no Redis needed: answered as usual in every mode
            unlimited = rls("internal", LDAP)
            assert (unlimited.overall_code, unlimited.statuses[0].limit_remaining) == (OK, UNLIMITED)
            assert rls("nobody", MARKETING).overall_code == OK

        backing.start()  # same port, empty

        def deciding() -> bool:
            try:
                return clients["error"]("messaging", MARKETING).statuses[0].limit_remaining == 4
            except grpc.RpcError:
                return False

        wait_for(deciding, "decisions once Redis is back")
        assert clients["deny"]("messaging", MARKETING).statuses[0].limit_remaining == 3
    finally:
        for rls in clients.values():
            rls.close()


def test_an_unknown_failure_mode_stops_the_start(
    coord_single: CoordUnderTest, start_coord: Callable[..., CoordThread]
) -> None:
    with pytest.raises(
        ConfigError, match="COORD_ENVOY_RATELIMIT_FAILURE_MODE: 'open' is not one of error, deny, allow"
    ):
        start_coord(coord_single.backing.url, envoy_ratelimit_failure_mode="open")
