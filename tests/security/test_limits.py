"""Per-tenant limits: calls per second (GCRA) and open streams, each refused with RESOURCE_EXHAUSTED,
a reason and a RetryInfo, before the call reaches Redis; other tenants are not affected.

The GCRA is tested on a clock the test moves (no wall-clock time); through the server, the rates are
so low (one call per 1000 s) that no call can be admitted by time passing during the test.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from coord.cache.v1 import cache_pb2
from coord.lock.v1 import lock_pb2, lock_pb2_grpc
from coord_server.auth.identity import Limits
from coord_server.auth.keys import AuthFileError, parse_auth_file
from coord_server.auth.limits import TenantLimiter
from tests.conftest import CoordThread, RedisProcess, make_settings, wait_for

from .authkit import api_key, bearer, cache_stub, get, new_key, redis_commands, refused, write_auth


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_gcra_admits_a_burst_then_one_call_per_interval() -> None:
    clock = Clock()
    limiter = TenantLimiter(clock)
    limits = Limits(calls_per_second=2, burst=3)
    assert [limiter.admit("t", limits) for _ in range(3)] == [None, None, None]
    assert limiter.admit("t", limits) == pytest.approx(0.5)  # one interval until the next
    clock.now += 0.25
    assert limiter.admit("t", limits) == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.admit("t", limits) is None
    assert limiter.admit("t", limits) == pytest.approx(0.5)
    assert limiter.admit("other", limits) is None  # every tenant has its own budget
    clock.now += 100  # idle time refills the burst, no more
    assert [limiter.admit("t", limits) for _ in range(4)][-1] == pytest.approx(0.5)


def test_the_default_burst_is_one_second_of_calls() -> None:
    limiter = TenantLimiter(Clock())
    admitted = 0
    while limiter.admit("t", Limits(calls_per_second=5)) is None:
        admitted += 1
    assert admitted == 5
    limiter = TenantLimiter(Clock())
    assert limiter.admit("t", Limits(calls_per_second=0.1)) is None
    assert limiter.admit("t", Limits(calls_per_second=0.1)) == pytest.approx(10)


def test_no_limits_cost_nothing_and_count_nothing() -> None:
    limiter = TenantLimiter(Clock())
    assert all(limiter.admit("t", Limits()) is None for _ in range(10_000))
    assert all(limiter.open_stream("t", Limits()) for _ in range(100))


def test_streams_are_counted_until_closed() -> None:
    limiter = TenantLimiter(Clock())
    two = Limits(max_streams=2)
    assert limiter.open_stream("t", two) and limiter.open_stream("t", two)
    assert not limiter.open_stream("t", two)
    assert limiter.open_stream("u", two)
    limiter.close_stream("t")
    assert limiter.open_streams("t") == 1
    assert limiter.open_stream("t", two)


LIMITS_FILE = """\
limits:
  default:
    calls_per_second: 100
    burst: 200
    max_streams: 10
  tenants:
    big:
      calls_per_second: 1000
    free:
      calls_per_second: null
      burst: null
      max_streams: null
"""


def test_tenant_limits_override_the_default_field_by_field() -> None:
    table = parse_auth_file(LIMITS_FILE, "auth.yaml").limits
    assert table.of("anyone") == Limits(calls_per_second=100, burst=200, max_streams=10)
    assert table.of("big") == Limits(calls_per_second=1000, burst=200, max_streams=10)
    assert table.of("free") == Limits()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "limits:\n  default:\n    burst: 5\n",
            "auth.yaml:2: limits of default: burst needs calls_per_second",
        ),
        ("limits:\n  default:\n    calls_per_second: 0\n", "auth.yaml:3: .* must be above 0"),
        ("limits:\n  default:\n    calls_per_second: -1\n", "auth.yaml:3: .* must be above 0"),
        ("limits:\n  default:\n    max_streams: 1.5\n", "auth.yaml:3: .* must be a whole number"),
        ("limits:\n  default:\n    max_streams: true\n", "auth.yaml:3: .* must be a whole number"),
        ("limits:\n  default:\n    calls: 5\n", "auth.yaml:3: .* unknown field 'calls'"),
        ("limits:\n  tenants:\n    'a:b': {}\n", "auth.yaml:3: tenant 'a:b'"),
        ("limits:\n  everyone: {}\n", "auth.yaml:2: limits: unknown key 'everyone'"),
    ],
)
def test_bad_limits_are_refused_with_their_line(text: str, message: str) -> None:
    with pytest.raises(AuthFileError, match=message):
        parse_auth_file(text, "auth.yaml")


# -- through a server -------------------------------------------------------------------------------


class Keys:
    def __init__(self) -> None:
        self.slow, slow = new_key()
        self.streamy, streamy = new_key()
        self.free, free = new_key()
        self.entries = [
            api_key("slow", slow, "slow"),
            api_key("streamy", streamy, "streamy"),
            api_key("free", free, "free"),
        ]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def server(
    redis_single: RedisProcess, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CoordThread]:
    limits = {
        "tenants": {
            # One call per 1000 s after a burst of 3: nothing refills during the test.
            "slow": {"calls_per_second": 0.001, "burst": 3},
            "streamy": {"max_streams": 1},
        }
    }
    path = write_auth(tmp_path_factory.mktemp("limits") / "auth.yaml", api_keys=keys.entries, limits=limits)
    server = CoordThread(make_settings(redis_single.url, auth_file=str(path))).start()
    yield server
    server.stop()


def test_a_tenant_over_its_rate_is_refused_with_retry_info(
    server: CoordThread, redis_single: RedisProcess, keys: Keys
) -> None:
    with grpc.insecure_channel(server.target) as channel, redis_single.client() as r:
        for _ in range(3):
            get(channel, "k", bearer(keys.slow))
        before = redis_commands(r)
        refusals = [refused(lambda: get(channel, "k", bearer(keys.slow))) for _ in range(5)]
        assert redis_commands(r) == before  # refused in the server's memory, before Redis
        for _ in range(20):  # another tenant's budget is its own
            get(channel, "k", bearer(keys.free))
    for refusal in refusals:
        assert refusal.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refusal.reason == "TENANT_RATE_LIMITED"
        assert refusal.metadata == {"tenant": "slow", "limit": "0.001"}
        assert refusal.retry_after is not None and 0 < refusal.retry_after <= 1000


class GetStream:
    """An open CacheService.GetStream whose requests the test sends one at a time."""

    def __init__(self, channel: grpc.Channel, key: str) -> None:
        self._requests: queue.Queue[cache_pb2.GetStreamRequest | None] = queue.Queue()
        self._next_id = 0
        self.call: Any = cache_stub(channel).GetStream(self._iterate(), metadata=bearer(key), timeout=60)

    def _iterate(self) -> Iterator[cache_pb2.GetStreamRequest]:
        while (request := self._requests.get()) is not None:
            yield request

    def ask(self, key: str) -> cache_pb2.GetStreamResponse:
        self._next_id += 1
        self._requests.put(
            cache_pb2.GetStreamRequest(request_id=self._next_id, get=cache_pb2.GetRequest(key=key))
        )
        answer: cache_pb2.GetStreamResponse = next(self.call)
        return answer

    def end(self) -> None:
        self._requests.put(None)
        assert list(self.call) == []

    def cancel(self) -> None:
        self._requests.put(None)
        self.call.cancel()


def open_streams(server: CoordThread, tenant: str) -> int:
    async def count() -> int:
        assert server.app is not None and server.app.auth is not None
        return server.app.auth.limiter.open_streams(tenant)

    return int(server.run(count()))


def test_a_tenant_at_its_stream_limit_is_refused_until_one_ends(server: CoordThread, keys: Keys) -> None:
    with grpc.insecure_channel(server.target) as channel:
        first = GetStream(channel, keys.streamy)
        assert first.ask("k").request_id == 1  # the stream runs
        assert open_streams(server, "streamy") == 1
        second = GetStream(channel, keys.streamy)
        refusal = refused(lambda: second.ask("k"))
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TENANT_STREAM_LIMIT")
        assert refusal.metadata == {"tenant": "streamy", "limit": "1"}
        assert refusal.retry_after is not None and refusal.retry_after > 0
        # A stream driven through the context (lock Hold) counts the same; unary calls are not streams.
        hold = lock_pb2_grpc.LockServiceStub(channel).Hold(
            iter([lock_pb2.HoldRequest()]), metadata=bearer(keys.streamy), timeout=10
        )
        assert refused(lambda: list(hold)).reason == "TENANT_STREAM_LIMIT"
        get(channel, "k", bearer(keys.streamy))
        # Other tenants may open streams.
        other = GetStream(channel, keys.free)
        other.ask("k")
        other.end()
        # Cancelled by the caller: the count goes back, and a new stream may open.
        first.cancel()
        wait_for(lambda: open_streams(server, "streamy") == 0, "the cancelled stream to be uncounted")
        third = GetStream(channel, keys.streamy)
        third.ask("k")
        third.end()  # ended normally
        wait_for(lambda: open_streams(server, "streamy") == 0, "the ended stream to be uncounted")
        assert open_streams(server, "free") == 0


def test_refused_streams_are_never_counted(server: CoordThread, keys: Keys) -> None:
    with grpc.insecure_channel(server.target) as channel:
        for _ in range(3):
            stranger = GetStream(channel, "not-a-key")
            assert refused(lambda s=stranger: s.ask("k")).reason == "UNAUTHENTICATED"  # type: ignore[misc]
        assert open_streams(server, "streamy") == 0
        stream = GetStream(channel, keys.streamy)
        stream.ask("k")
        stream.end()


def test_an_auth_file_without_limits_sets_none(tmp_path: Path) -> None:
    _, digest = new_key()
    loaded = parse_auth_file(
        (write_auth(tmp_path / "a.yaml", api_keys=[api_key("k", digest, "t")])).read_text(), "a"
    )
    assert loaded.limits.of("t") == Limits()
    assert next(iter(loaded.api_keys.values())).identity.limits == Limits()
