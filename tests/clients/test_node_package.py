"""The npm package client/node (@coord/client) against real Coord: its own tests, run by Node's test
runner (``node --test``), their TAP counts read back here.

``test/unit`` needs no server (the version, the shipped service config and protos, the checks made
before any call); ``test/live`` runs against the single node and the 3-master Cluster; ``test/outage``
against a server whose Redis is down (typed errors with ``retryAfter``, retries from the service
config). The package is built by ``make proto`` (mk/node.mk), which ``make test`` runs first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import CoordThread, CoordUnderTest, RedisProcess
from ..polyglot._node import NodeRun

PACKAGE = Path(__file__).resolve().parents[2] / "client" / "node"
_COUNT = re.compile(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", re.MULTILINE)


def _files(folder: str) -> list[str]:
    return sorted(p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "test" / folder).glob("*.test.js"))


def run_package_tests(label: str, folder: str, target: str | None = None) -> NodeRun:
    """``node --test`` over ``test/<folder>/*.test.js`` in client/node, TAP to stdout."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: run `make deps` (Debian: apt-get install nodejs npm)")
    if not (PACKAGE / "dist" / "index.js").is_file():
        pytest.fail("client/node is not built: run `make proto` (mk/node.mk)")
    files = _files(folder)
    assert files, f"no test files in client/node/test/{folder}"
    env = {k: v for k, v in os.environ.items() if k != "COORD_TARGET"}
    env["NO_COLOR"] = "1"
    if target is not None:
        env["COORD_TARGET"] = target
    proc = subprocess.run(
        [node, "--test", "--test-reporter=tap", *files],
        cwd=PACKAGE,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    counts = {name: int(n) for name, n in _COUNT.findall(proc.stdout)}
    return NodeRun(label, proc.returncode, proc.stdout + proc.stderr, counts)


def _check(run: NodeRun) -> None:
    print(run.summary)
    # Every test ran and passed: none failed, was cancelled, skipped or left as todo.
    assert run.ok, f"{run.summary}\n{run.output}"
    assert run.counts["pass"] == run.counts["tests"]


def test_node_package_unit() -> None:
    _check(run_package_tests("package, no server", "unit"))


def test_node_package_live(coord: CoordUnderTest) -> None:
    _check(run_package_tests(f"package, {coord.kind}", "live", coord.target))


def test_node_package_with_redis_down(
    redis_factory: Callable[..., RedisProcess], start_coord: Callable[..., CoordThread]
) -> None:
    backing = redis_factory()
    server = start_coord(backing.url)
    backing.stop()  # every Redis call now fails fast: Coord answers UNAVAILABLE + RetryInfo
    _check(run_package_tests("package, Redis down", "outage", server.target))


def test_the_readme_shows_the_five_lines_the_docs_run() -> None:
    """The README's TypeScript example is the docs' five lines, which the docs test runs as written."""
    root = PACKAGE.parent.parent
    js = re.compile(r"```js\n(.*?)```", re.S)
    readme = js.findall((root / "README.md").read_text())
    docs = (root / "docs" / "clients.md").read_text()
    node_section = docs.split("\n## Node.js / TypeScript\n", 1)[1].split("\n## ", 1)[0]
    assert readme, "no TypeScript example in the README"
    assert all(block in js.findall(node_section) for block in readme)
