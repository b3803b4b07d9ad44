"""coordctl as a user runs it: a subprocess, its stdout, stderr and exit code."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from coord_client.cli import build_parser
from tests.conftest import free_port


def coordctl(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "coord_client.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def ctl(coord_single):
    def run(*args: str, stdin: bytes | None = None):
        return coordctl("--target", coord_single.target, *args, stdin=stdin)

    return run


def test_set_get_roundtrip_and_json(ctl):
    done = ctl("cache", "set", "greeting", "hello world", "--ttl", "10m")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("stored greeting (version ")

    got = ctl("cache", "get", "greeting")
    assert (got.returncode, got.stdout, got.stderr) == (0, b"hello world\n", b"")

    as_json = json.loads(ctl("--json", "cache", "get", "greeting").stdout)
    assert as_json["key"] == "greeting" and as_json["found"] is True
    assert (as_json["value"], as_json["encoding"]) == ("hello world", "utf-8")
    assert as_json["version"] > 0 and as_json["expire_time"].endswith("Z")


def test_binary_values_from_stdin(ctl):
    assert ctl("cache", "set", "blob", "--stdin", stdin=b"\x00\xffbin").returncode == 0
    assert ctl("cache", "get", "blob").stdout == b"\x00\xffbin"
    as_json = json.loads(ctl("--json", "cache", "get", "blob").stdout)
    assert as_json["encoding"] == "base64" and base64.b64decode(as_json["value"]) == b"\x00\xffbin"


def test_conditions_not_met_exit_1(ctl):
    miss = ctl("cache", "get", "missing")
    assert (miss.returncode, miss.stdout) == (1, b"")
    assert miss.stderr.decode().strip() == "missing: not found"

    ctl("cache", "set", "k", "v1")
    exists = ctl("--json", "cache", "set", "k", "v2", "--if-absent")
    assert exists.returncode == 1
    assert json.loads(exists.stdout)["outcome"] == "already_exists"

    mismatch = ctl("cache", "set", "k", "v2", "--if-version", "1")
    assert mismatch.returncode == 1 and b"version mismatch" in mismatch.stderr
    assert ctl("cache", "set", "nope", "v", "--if-present").returncode == 1


def test_mget_delete_incr_touch(ctl):
    ctl("cache", "set", "a", "1")
    ctl("cache", "set", "b", "2")
    mget = ctl("cache", "mget", "a", "x", "b")
    assert mget.returncode == 1 and mget.stdout == b"a\t1\nb\t2\n" and b"x: not found" in mget.stderr
    assert ctl("cache", "mget", "a", "b").returncode == 0

    incr = ctl("cache", "incr", "n", "-5", "--ttl", "1h")
    assert (incr.returncode, incr.stdout) == (0, b"-5\n")
    assert json.loads(ctl("--json", "cache", "incr", "n").stdout)["value"] == -4

    touch = ctl("--json", "cache", "touch", "a", "2h")
    assert touch.returncode == 0 and json.loads(touch.stdout)["found"] is True
    assert ctl("cache", "touch", "x", "1s").returncode == 1

    delete = ctl("--json", "cache", "delete", "a", "x")
    assert delete.returncode == 1
    assert [r["outcome"] for r in json.loads(delete.stdout)["results"]] == ["deleted", "not_found"]
    deleted = ctl("cache", "delete", "b", "n")
    assert (deleted.returncode, deleted.stdout) == (0, b"deleted 2 of 2\n")


def test_bad_input_exits_2(ctl):
    server_refused = ctl("cache", "get", "")
    assert server_refused.returncode == 2
    lines = server_refused.stderr.decode().splitlines()
    assert lines == ["coordctl: INVALID_ARGUMENT (INVALID_FIELD): key: must not be empty"]

    as_json = ctl("--json", "cache", "set", "k", "v", "--ttl", "3000d")
    assert as_json.returncode == 2
    error = json.loads(as_json.stderr)["error"]
    assert (error["code"], error["reason"]) == ("INVALID_ARGUMENT", "TTL_OUT_OF_RANGE")
    assert error["field_violations"][0]["field"] == "ttl"

    ctl("cache", "set", "text", "abc")
    assert ctl("cache", "incr", "text").returncode == 2  # FAILED_PRECONDITION

    usage = ctl("cache", "set", "k", "v", "--ttl", "soon")
    assert usage.returncode == 2 and b"not a duration" in usage.stderr
    assert ctl("cache", "set", "k", "v", "--if-absent", "--if-present").returncode == 2
    assert ctl("cache", "set", "k").returncode == 2  # neither VALUE nor --stdin
    assert ctl("cache", "delete", "a", "b", "--if-version", "3").returncode == 2


def test_unreachable_server_exits_3():
    done = coordctl("--target", f"127.0.0.1:{free_port()}", "--timeout", "300ms", "cache", "get", "k")
    assert done.returncode == 3
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coordctl: UNAVAILABLE")


def test_target_from_environment_and_help(coord_single):
    done = coordctl("cache", "incr", "n", env={"COORD_TARGET": coord_single.target})
    assert (done.returncode, done.stdout) == (0, b"1\n")
    help_text = coordctl("--help").stdout.decode()
    assert "exit codes:" in help_text and "3  unavailable" in help_text


def test_durations_take_coords_one_syntax():
    parse = build_parser().parse_args
    assert parse(["cache", "set", "k", "v", "--ttl", "1h30m"]).ttl == 5400.0
    assert parse(["cache", "touch", "k", "1m30s"]).ttl == 90.0
    created = parse(["session", "create", "--idle", "1h30m", "--absolute", "1d"])
    assert (created.idle, created.absolute) == (5400.0, 86400.0)
    assert parse(["--timeout", "1s500ms", "cache", "get", "k"]).timeout == 1.5


def test_zero_is_allowed_where_the_server_reads_it_as_its_default(capsys):
    parse = build_parser().parse_args
    # cache.proto and session.proto: a zero TTL or timeout means the server's default, as unset does.
    assert parse(["cache", "set", "k", "v", "--ttl", "0"]).ttl is None
    assert parse(["cache", "incr", "n", "--ttl", "0s"]).ttl is None
    assert parse(["cache", "touch", "k", "0"]).ttl is None
    created = parse(["session", "create", "--idle", "0", "--absolute", "0ms"])
    assert (created.idle, created.absolute) == (None, None)
    # A deadline of zero is no deadline one could meet: refused before anything is sent.
    with pytest.raises(SystemExit) as exited:
        parse(["--timeout", "0", "cache", "get", "k"])
    assert exited.value.code == 2 and "'0' must be longer than zero" in capsys.readouterr().err
    for wrong in ("30m1h", "-1s", "1h 30m"):
        with pytest.raises(SystemExit):
            parse(["cache", "set", "k", "v", f"--ttl={wrong}"])
        assert "is not a duration" in capsys.readouterr().err


def test_zero_ttl_reaches_the_server_as_its_default(ctl):
    long = json.loads(ctl("--json", "cache", "set", "k", "v", "--ttl", "1h30m").stdout)
    assert long["stored"] is True
    # Touched with 0: the server's default TTL (one hour), which ends before the 1h30m did.
    touched = ctl("--json", "cache", "touch", "k", "0")
    assert touched.returncode == 0, touched.stderr
    assert json.loads(touched.stdout)["expire_time"] < long["expire_time"]
    assert ctl("cache", "set", "z", "v", "--ttl", "0").returncode == 0
    made = ctl("session", "create", "dave", "--idle", "0", "--absolute", "0")
    assert made.returncode == 0, made.stderr
