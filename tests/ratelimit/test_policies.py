"""Named policies: loading, use in checks, SIGHUP reload, and refusal of malformed files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest

from coord_server.config import ConfigError
from coord_server.ratelimit.policies import PolicyError, parse_policies
from coord_server.ratelimit.rules import Algorithm, FailureMode

from ..conftest import free_port, wait_for
from .helpers import Limiter, bad_field, ms, pb

GOOD = """\
policies:
  login:
    algorithm: fixed_window
    limit: 2
    period: 15m
  api:
    limit: 100
    period: 1m
    burst: 20
    on_backend_error: open
"""


def by_policy(rl: Limiter, key: str, policy: str, **kw: object) -> pb.CheckResponse:
    return rl.check(pb.Descriptor(key=key, policy=policy), **kw)


def test_parse_reads_every_field():
    policies = parse_policies(GOOD, "p.yaml")
    login, api = policies["login"], policies["api"]
    assert (login.algorithm, login.limit, login.period_ms, login.burst) == (
        Algorithm.FIXED_WINDOW,
        2,
        900_000,
        2,
    )
    assert login.on_backend_error is FailureMode.CLOSED
    assert (api.algorithm, api.limit, api.period_ms, api.burst) == (Algorithm.TOKEN_BUCKET, 100, 60_000, 20)
    assert api.on_backend_error is FailureMode.OPEN
    assert parse_policies("", "p.yaml") == {}
    assert parse_policies("policies:\n", "p.yaml") == {}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("policies:\n  a:\n    limit: 5\n    period: [1\n", 5, "not valid YAML"),
        ("policies:\n  a:\n    limit: 0\n    period: 1s\n", 3, "limit: must be at least 1"),
        ("policies:\n  a:\n    limit: 5\n    period: soon\n", 4, "not a duration"),
        ("policies:\n  a:\n    limit: 5\n    period: 1.5ms\n", 4, "whole number of milliseconds"),
        ("policies:\n  a:\n    limit: 5\n    period: 0.0019999\n", 4, "whole number of milliseconds"),
        ("policies:\n  a:\n    limit: 5\n", 3, "'period' is required"),
        ("policies:\n  a:\n    limit: 5\n    period: 1s\n    colour: red\n", 5, "unknown field 'colour'"),
        ("policies:\n  a:\n    limit: five\n    period: 1s\n", 3, "whole number"),
        ("policies:\n  a:\n    limit: 5\n    period: 1s\n    algorithm: magic\n", 5, "algorithm must be"),
        ("policies:\n  a:\n    limit: 5\n    period: 1s\n  a:\n    limit: 1\n    period: 1s\n", 5, "twice"),
        ("policies:\n  'bad name':\n    limit: 5\n    period: 1s\n", 2, "policy name"),
        ("limits:\n  a: 1\n", 1, "unknown top-level key"),
        ("- a\n", 1, "must be a mapping"),
        (
            "policies:\n  a:\n    limit: 5\n    period: 1s\n    algorithm: fixed_window\n    burst: 3\n",
            6,
            "burst",
        ),
    ],
)
def test_parse_refuses_with_the_line(text, line, words):
    with pytest.raises(PolicyError) as caught:
        parse_policies(text, "p.yaml")
    assert str(caught.value).startswith(f"p.yaml:{line}: ")
    assert words in str(caught.value)


def test_named_policies_in_checks(coord_single, start_coord, tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(GOOD)
    server = start_coord(coord_single.backing.url, ratelimit_policies=str(path))
    rl = Limiter(server.target)
    first = by_policy(rl, "login:alice", "login")
    assert (first.allowed, first.remaining, first.limit) == (True, 1, 2)
    assert first.ratelimit_policy_header == '"login";q=2;w=900'
    assert first.statuses[0].algorithm == pb.ALGORITHM_FIXED_WINDOW
    assert ms(first.statuses[0].period) == 900_000
    assert by_policy(rl, "login:alice", "login").allowed
    assert not by_policy(rl, "login:alice", "login").allowed
    assert by_policy(rl, "u", "api", cost=20).remaining == 0
    with pytest.raises(grpc.RpcError) as caught:
        by_policy(rl, "u", "api", cost=21)
    assert bad_field(caught.value) == ("cost", "RATELIMIT_COST_TOO_HIGH")
    rl.close()


def test_a_malformed_file_stops_the_start(coord_single, start_coord, tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text("policies:\n  a:\n    limit: -1\n    period: 1s\n")
    with pytest.raises(ConfigError, match=r"policies.yaml:3: .*limit"):
        start_coord(coord_single.backing.url, ratelimit_policies=str(path))


def test_sighup_reloads_without_dropping_requests_and_keeps_old_policies_on_error(coord_single, tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(GOOD)
    port = free_port()
    env = {
        **os.environ,
        "COORD_REDIS_URL": coord_single.backing.url,
        "COORD_LISTEN": f"127.0.0.1:{port}",
        "COORD_RATELIMIT_POLICIES": str(path),
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "coord_server"], env=env, stderr=log)
    rl = Limiter(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(rl.channel).result(timeout=30)
        assert by_policy(rl, "a", "api").allowed
        with pytest.raises(grpc.RpcError):
            by_policy(rl, "a", "search")

        failures: list[BaseException] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    by_policy(rl, "h", "api", dry_run=True)
                except BaseException as exc:  # recorded and asserted below
                    failures.append(exc)

        thread = threading.Thread(target=hammer)
        thread.start()
        path.write_text(GOOD + "  search:\n    limit: 3\n    period: 1s\n")
        proc.send_signal(signal.SIGHUP)

        def search_known() -> bool:
            try:
                return by_policy(rl, "s", "search", dry_run=True).limit == 3
            except grpc.RpcError:
                return False

        wait_for(search_known, "the reloaded policy")
        path.write_text(
            "policies:\n  api:\n    limit: 100\n    period: 1m\n  search:\n    limit: 0\n    period: 1s\n"
        )
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"NOT reloaded" in log_path.read_bytes(), "the refusal in the log")
        stop.set()
        thread.join()
        assert failures == []
        assert f"{path}:6: policy 'search': limit: must be at least 1".encode() in log_path.read_bytes()
        assert by_policy(rl, "s", "search", dry_run=True).limit == 3  # the previous policies stay
        assert by_policy(rl, "l", "login", dry_run=True).limit == 2
    finally:
        rl.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_policy_file_path_must_exist_at_start(coord_single, start_coord, tmp_path):
    missing = Path(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="cannot be read"):
        start_coord(coord_single.backing.url, ratelimit_policies=str(missing))
