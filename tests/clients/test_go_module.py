"""Coord's Go module (client/go) against real Coord: its ``go test ./...`` run by pytest.

The module's examples and tests (client/go/examples, client/go/coord, client/go/cmd/coord-bench) run
against the ``coord`` fixture's server, single node and Redis Cluster, through ``make go-test`` so that
the offline build settings (the vendor tree from Debian's Go sources, -mod=vendor, no module proxy)
come from one place, mk/go.mk. ``go test -json`` reports every test and example, which are counted:
all must pass and none may be skipped.

The Go code shown in docs/clients.md, client/go/README.md and the README must be code these tests
compile and run: each ```go block is checked to appear, line for line, in the module's sources.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

from ..conftest import CoordUnderTest

ROOT = Path(__file__).resolve().parents[2]
GO_DIR = ROOT / "client" / "go"
# What the issue asks the module to show working; each must be among the passed tests.
REQUIRED = {
    "examples": {
        "Example",
        "Example_cache",
        "Example_errors",
        "Example_events",
        "Example_lock",
        "Example_lockHold",
        "Example_rateLimit",
        "Example_session",
        "TestCacheCompareAndSet",
        "TestEmptyKeyIsInvalidArgument",
        "TestEventsResumeNoGapNoDuplicate",
        "TestLockFencingToken",
        "TestLockHoldExcludesOthers",
        "TestSessionLifecycle",
    },
    "coord": {"TestErrorOfReadsEveryDetail", "TestCursorsFollowFrames"},
    "cmd/coord-bench": {"TestRun", "TestWrite", "TestWriteStream"},
}
_GO_BLOCK = re.compile(r"^```go\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _make_env() -> dict[str, str]:
    # A nested make must not inherit the outer one's job server or flags (`make test` runs pytest).
    return {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}


def _go_test(target: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    if shutil.which("go") is None:
        raise RuntimeError("go is not on PATH: run `make deps` (Debian: apt-get install golang-go)")
    env = {**_make_env(), "COORD_TARGET": target}
    proc = subprocess.run(
        ["make", "--no-print-directory", "-s", "go-test", "GO_TEST_ARGS=-json"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,  # the first run compiles grpc-go and protobuf-go; later runs use the build cache
        check=False,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, events


def test_go_module(coord: CoordUnderTest) -> None:
    proc, events = _go_test(coord.target)
    # One final action per test: "pass", "fail" or "skip" (package-level events carry no "Test").
    outcome = {
        (str(e["Package"]), str(e["Test"])): str(e["Action"])
        for e in events
        if "Test" in e and e["Action"] in {"pass", "fail", "skip"}
    }
    counts = Counter(outcome.values())
    print(
        f"go test [{coord.kind}]: {len(outcome)} tests and examples, {counts['pass']} passed, "
        f"{counts['fail']} failed, {counts['skip']} skipped"
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert counts["fail"] == 0 and counts["skip"] == 0, outcome
    assert counts["pass"] == len(outcome) > 0, tail
    module = "github.com/coord-dev/coord/client/go/"
    for package, names in REQUIRED.items():
        passed = {
            test for (pkg, test), action in outcome.items() if pkg == module + package and action == "pass"
        }
        assert names <= passed, f"{package}: not run or not passed: {sorted(names - passed)}"


def test_go_module_zip() -> None:
    """``make go-module`` writes the module as a proxy serves it, and the unpacked zip builds alone."""
    proc = subprocess.run(
        ["make", "--no-print-directory", "-s", "go-module"],
        cwd=ROOT,
        env=_make_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (archive,) = (GO_DIR / "dist").glob("github.com/coord-dev/coord/client/go/@v/v*.zip")
    prefix = f"github.com/coord-dev/coord/client/go@{archive.stem}/"
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    assert all(name.startswith(prefix) for name in names), names
    files = {name.removeprefix(prefix) for name in names}
    expected = {
        "go.mod",
        "LICENSE",
        "README.md",
        "coord/service_config.json",
        "gen/coord/cache/v1/cache_grpc.pb.go",
    }
    assert expected <= files, sorted(expected - files)
    assert not [f for f in files if f.split("/")[0] in {"vendor", ".build", "offline", "dist"}], sorted(files)


def _code_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_go_snippets_are_compiled_code() -> None:
    doc = (ROOT / "docs" / "clients.md").read_text()
    go_section = doc.split("\n## Go\n", 1)[1].split("\n## ", 1)[0]
    blocks = [
        *_GO_BLOCK.findall(go_section),
        *_GO_BLOCK.findall((GO_DIR / "README.md").read_text()),
        *_GO_BLOCK.findall((ROOT / "README.md").read_text()),
    ]
    assert blocks, "no Go code in docs/clients.md's Go section or client/go/README.md"
    sources = [
        _code_lines(path.read_text())
        for path in GO_DIR.rglob("*.go")
        if not {"vendor", "gen", ".build", "dist"} & set(path.relative_to(GO_DIR).parts)
    ]

    def found(snippet: list[str]) -> bool:
        n = len(snippet)
        return any(src[i : i + n] == snippet for src in sources for i in range(len(src) - n + 1))

    missing = [block for block in blocks if not found(_code_lines(block))]
    assert not missing, "Go snippets that are not in client/go's sources:\n" + "\n---\n".join(missing)
