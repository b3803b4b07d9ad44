"""``coordctl map|list|set|zset``: most commands run in this process (``main`` with captured output,
for speed); the end-to-end ones as a user runs them, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from coord_client import Client
from coord_client.cli import build_parser, main
from tests.conftest import CoordUnderTest, wait_for

from .test_cli import coordctl


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


Ctl = Callable[..., Ran]


@pytest.fixture
def ctl(coord_single: CoordUnderTest, capsys: pytest.CaptureFixture[str]) -> Ctl:
    def run(*args: str) -> Ran:
        code = main(["--target", coord_single.target, *args])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


def test_map_commands(ctl: Ctl) -> None:
    made = ctl("map", "set", "user:42", "name=Ada", "lang=en", "note=a=b", "--ttl", "1h")
    assert (made.code, made.out) == (0, "user:42: 3 added\n")
    assert ctl("map", "get", "user:42", "note").out == "a=b\n"  # split at the first =
    assert ctl("map", "get", "user:42", "name").out == "Ada\n"

    miss = ctl("map", "get", "user:42", "nope")
    assert (miss.code, miss.out, miss.err) == (1, "", "nope: not found\n")
    many = ctl("map", "get", "user:42", "name", "nope", "lang")
    assert (many.code, many.out) == (1, "name\tAda\nlang\ten\n")
    as_json = ctl("--json", "map", "get", "user:42", "name", "nope")
    assert as_json.json()["values"] == [
        {"field": "name", "found": True, "value": "Ada", "encoding": "utf-8"},
        {"field": "nope", "found": False},
    ]

    assert ctl("map", "getall", "user:42").out == "lang\ten\nname\tAda\nnote\ta=b\n"
    everything = ctl("--json", "map", "getall", "user:42").json()
    assert everything["fields"]["name"] == {"value": "Ada", "encoding": "utf-8"}

    assert ctl("map", "incr", "user:42", "visits").out == "1\n"
    assert ctl("map", "incr", "user:42", "visits", "-5").out == "-4\n"
    assert ctl("map", "incr", "user:42", "score", "0.5").out == "0.5\n"
    incr = ctl("--json", "map", "incr", "user:42", "visits", "10").json()
    assert (incr["value"], incr["field"], incr["applied"], incr["length"]) == (6, "visits", True, 5)

    assert ctl("map", "remove", "user:42", "note", "nope").out == "user:42: 1 removed\n"
    assert ctl("map", "len", "user:42").out == "4\n"
    state = ctl("--json", "map", "len", "user:42").json()
    assert state["exists"] is True and state["version"] > 0 and state["expire_time"].endswith("Z")

    stale = ctl("map", "set", "user:42", "x=1", "--if-version", str(state["version"] + 1))
    assert (
        stale.code == 1
        and stale.err == f"user:42: not applied: version mismatch (version {state['version']})\n"
    )
    stale_json = ctl("--json", "map", "set", "user:42", "x=1", "--if-version", str(state["version"] + 1))
    assert stale_json.code == 1 and stale_json.json()["applied"] is False
    cas = ctl("--json", "map", "set", "user:42", "x=1", "--if-version", str(state["version"]), "--keep-ttl")
    assert cas.code == 0 and cas.json()["expire_time"] == state["expire_time"]

    touched = ctl("map", "touch", "user:42", "2h")
    assert touched.code == 0 and touched.out.startswith("user:42 expires ")
    assert ctl("map", "touch", "nothing", "1m").code == 1
    not_deleted = ctl("map", "delete", "user:42", "--if-version", "1")
    assert not_deleted.code == 1 and "not deleted: version mismatch" in not_deleted.err
    assert ctl("map", "delete", "user:42").out == "deleted user:42\n"
    gone = ctl("map", "delete", "user:42")
    assert (gone.code, gone.err) == (1, "user:42: not deleted: not found\n")
    assert ctl("map", "getall", "user:42").out == ""


def test_list_commands(ctl: Ctl) -> None:
    assert ctl("list", "push", "jobs", "a", "b", "c").out == "3\n"
    assert ctl("list", "push", "jobs", "y", "x", "--front").out == "5\n"
    assert ctl("list", "range", "jobs").out == "x\ny\na\nb\nc\n"
    assert ctl("list", "range", "jobs", "1", "-2").out == "y\na\nb\n"
    capped = ctl("--json", "list", "push", "jobs", "d", "--max-length", "4").json()
    assert (capped["length"], capped["trimmed"]) == (4, 2)

    assert ctl("list", "pop", "jobs").out == "a\n"
    assert ctl("list", "pop", "jobs", "--count", "2", "--back").out == "d\nc\n"
    popped = ctl("--json", "list", "pop", "jobs").json()
    assert popped["values"] == [{"value": "b", "encoding": "utf-8"}] and popped["exists"] is False

    empty = ctl("list", "pop", "jobs", "--wait", "200ms")
    assert (empty.code, empty.out, empty.err) == (1, "", "jobs: empty\n")

    ctl("list", "push", "dup", "a", "b", "a", "c", "a")
    assert ctl("list", "remove", "dup", "a", "--count", "-1").out == "dup: 1 removed\n"
    assert ctl("list", "range", "dup").out == "a\nb\na\nc\n"
    assert ctl("list", "trim", "dup", "1", "2").out == "dup: 2 removed\n"
    assert ctl("list", "range", "dup").out == "b\na\n"
    assert ctl("list", "len", "dup").out == "2\n"
    assert ctl("list", "delete", "dup").code == 0


def test_set_commands(ctl: Ctl) -> None:
    assert ctl("set", "add", "tags", "red", "blue", "--ttl", "10m").out == "tags: 2 added\n"
    assert ctl("set", "add", "tags", "red").out == "tags: 0 added\n"
    held = ctl("set", "contains", "tags", "red", "green")
    assert (held.code, held.out) == (1, "red\tyes\ngreen\tno\n")
    assert ctl("set", "contains", "tags", "red").code == 0
    assert ctl("--json", "set", "contains", "tags", "blue", "x").json()["contains"] == {
        "blue": True,
        "x": False,
    }
    assert ctl("set", "members", "tags").out == "blue\nred\n"
    assert ctl("--json", "set", "members", "tags").json()["members"] == ["blue", "red"]

    assert ctl("set", "remove", "tags", "red", "nope").out == "tags: 1 removed\n"
    assert ctl("set", "pop", "tags").out == "blue\n"
    empty = ctl("set", "pop", "tags")
    assert (empty.code, empty.err) == (1, "tags: empty\n")
    assert ctl("set", "len", "tags").out == "0\n"


def test_zset_commands(ctl: Ctl) -> None:
    put = ctl("zset", "put", "board", "alice=10", "bob=20", "carol=15")
    assert (put.code, put.out) == (0, "board: 3 added, 0 updated\n")
    assert ctl("zset", "incr", "board", "alice", "15").out == "25\n"
    assert ctl("zset", "incr", "board", "dave", "-2.5").out == "-2.5\n"
    assert ctl("zset", "top", "board", "2").out == "0\talice\t25\n1\tbob\t20\n"
    assert ctl("zset", "top", "board").out.count("\n") == 4
    assert ctl("zset", "top", "board", "1", "--ascending").out == "0\tdave\t-2.5\n"

    assert ctl("zset", "rank", "board", "bob").out == "1\tbob\t20\n"
    assert ctl("zset", "rank", "board", "bob", "--ascending").out == "2\tbob\t20\n"
    rank = ctl("--json", "zset", "rank", "board", "carol").json()
    assert rank == {"name": "board", "found": True, "member": "carol", "rank": 2, "score": 15}
    missing = ctl("zset", "rank", "board", "nobody")
    assert (missing.code, missing.err) == (1, "nobody: not found\n")

    assert ctl("zset", "around", "board", "bob", "1").out == "0\talice\t25\n1\tbob\t20\n2\tcarol\t15\n"
    assert (
        ctl("zset", "around", "board", "bob", "--before", "0", "--after", "1").out
        == "1\tbob\t20\n2\tcarol\t15\n"
    )
    window = ctl("--json", "zset", "around", "board", "carol", "1").json()
    assert [m["member"] for m in window["members"]] == ["bob", "carol", "dave"]
    assert ctl("zset", "around", "board", "nobody", "2").code == 1

    scores = ctl("zset", "score", "board", "alice", "nobody")
    assert (scores.code, scores.out) == (1, "alice\t25\n")
    assert ctl("zset", "range", "board", "0", "1").out == "0\tdave\t-2.5\n1\tcarol\t15\n"
    assert ctl("zset", "range", "board", "0", "0", "--descending").out == "0\talice\t25\n"
    assert ctl("zset", "rangebyscore", "board", "15", "25").out == "carol\t15\nbob\t20\nalice\t25\n"
    assert (
        ctl("zset", "rangebyscore", "board", "15", "25", "--exclusive-min", "--limit", "1").out == "bob\t20\n"
    )
    assert ctl("zset", "rangebyscore", "board", "--", "-inf", "0").out == "dave\t-2.5\n"
    assert ctl("zset", "rangebyscore", "board", "--descending", "--offset", "3").out == "dave\t-2.5\n"

    kept = ctl("zset", "put", "board", "alice=1", "--if-higher")
    assert kept.out == "board: 0 added, 0 updated\n"
    assert ctl("zset", "put", "board", "erin=1", "--if-exists").out == "board: 0 added, 0 updated\n"
    assert ctl("zset", "put", "board", "bob=30", "--if-higher").out == "board: 0 added, 1 updated\n"
    infinite = ctl("--json", "zset", "put", "board", "top=inf")
    assert infinite.code == 0
    assert ctl("--json", "zset", "top", "board", "1").json()["members"][0]["score"] == "inf"

    assert ctl("zset", "remove", "board", "top", "dave").out == "board: 2 removed\n"
    assert ctl("zset", "len", "board").out == "3\n"


def test_bad_input_and_wrong_type(ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    ctl("map", "set", "m", "text=abc")
    refused = ctl("map", "incr", "m", "text")
    assert refused.code == 2 and refused.err.startswith("coordctl: FAILED_PRECONDITION (VALUE_NOT_INTEGER)")
    wrong = ctl("--json", "list", "push", "m", "x")
    assert wrong.code == 2
    assert json.loads(wrong.err)["error"]["reason"] == "COLLECTION_WRONG_TYPE"

    for usage in (
        ["map", "set", "m", "novalue"],
        ["zset", "put", "b", "alice"],
        ["zset", "put", "b", "alice=x"],
        ["zset", "put", "b", "a=1", "--if-new", "--if-higher"],
        ["list", "pop", "q", "--count", "0"],
        ["map", "incr", "m", "n", "nan"],
    ):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(usage)
        assert exited.value.code == 2
    capsys.readouterr()
    refused_locally = ctl("list", "pop", "q", "--wait", "1s", "--if-version", "3")
    assert refused_locally.code == 2 and "if_version cannot be combined" in refused_locally.err


def test_blocking_pop_from_the_shell_released_by_a_push(coord_single: CoordUnderTest) -> None:
    popper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coord_client.cli",
            "--target",
            coord_single.target,
            "list",
            "pop",
            "q",
            "--wait",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def waiting() -> bool:
            with coord_single.redis() as r:
                return int(r.zcard("coord:default:coll:{q}:q")) >= 1

        wait_for(waiting, "coordctl's pop to wait", timeout=60)
        with Client(coord_single.target, timeout=10) as client:
            assert client.list("q").push(b"job-1").applied
        out, err = popper.communicate(timeout=60)
    finally:
        if popper.poll() is None:
            popper.kill()
            popper.wait()
    assert (popper.returncode, out, err) == (0, b"job-1\n", b"")


def test_coordctl_end_to_end(coord_single: CoordUnderTest) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return coordctl("--target", coord_single.target, *args)

    assert run("map", "set", "user:42", "name=Ada").returncode == 0
    assert run("map", "get", "user:42", "name").stdout == b"Ada\n"
    assert run("zset", "incr", "board", "alice", "10").stdout == b"10\n"
    assert json.loads(run("--json", "zset", "rank", "board", "alice").stdout)["rank"] == 0
    help_text = run("--help").stdout.decode()
    assert all(group in help_text for group in ("map", "list", "set", "zset"))
