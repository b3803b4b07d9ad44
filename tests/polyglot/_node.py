"""Running the Node.js suite from pytest: ``node --test`` as a subprocess, its TAP summary parsed.

The suite lives next to this file (``suite/*.test.js``, ``outage/*.test.js``, ``secure/*.test.js``,
``lib/coord.js``); its packages are installed into ``node_modules/`` by ``make`` (``npm ci`` from
``package-lock.json``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent
SUITE = sorted(p.relative_to(NODE_DIR).as_posix() for p in (NODE_DIR / "suite").glob("*.test.js"))
OUTAGE = sorted(p.relative_to(NODE_DIR).as_posix() for p in (NODE_DIR / "outage").glob("*.test.js"))
SECURE = sorted(p.relative_to(NODE_DIR).as_posix() for p in (NODE_DIR / "secure").glob("*.test.js"))
_COUNT = re.compile(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class NodeRun:
    """One ``node --test`` run: what ran, against which Coord, and how it ended."""

    label: str
    returncode: int
    output: str
    counts: dict[str, int]

    @property
    def summary(self) -> str:
        c = self.counts
        return (
            f"node --test [{self.label}]: {c.get('tests', 0)} tests, {c.get('pass', 0)} passed, "
            f"{c.get('fail', 0)} failed, {c.get('cancelled', 0)} cancelled, {c.get('skipped', 0)} skipped"
        )

    @property
    def ok(self) -> bool:
        c = self.counts
        bad = c.get("fail", 1) + c.get("cancelled", 1) + c.get("skipped", 1) + c.get("todo", 1)
        return self.returncode == 0 and bad == 0 and c.get("pass", 0) == c.get("tests", -1) > 0


# Every run of the session, for the terminal summary (see conftest.py).
RUNS: list[NodeRun] = []


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH: run `make deps` (Debian: apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        raise RuntimeError(f"Node packages missing: run `make test`, or `npm ci` in {NODE_DIR}")
    return node


def run_node_suite(
    label: str,
    files: list[str],
    target: str,
    timeout: float = 90.0,
    connection: Mapping[str, str] | None = None,
) -> NodeRun:
    """Run ``files`` with Node's test runner against the Coord at ``target``; TAP to stdout.

    ``connection`` adds the variables lib/coord.js reads besides the target (``COORD_TLS_CA``,
    ``COORD_TOKEN_FILE``); without them the suite connects in plaintext, with no credential."""
    env = {**os.environ, **(connection or {}), "COORD_TARGET": target, "NO_COLOR": "1"}
    proc = subprocess.run(
        [node_binary(), "--test", "--test-reporter=tap", *files],
        cwd=NODE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout + proc.stderr
    counts = {name: int(n) for name, n in _COUNT.findall(proc.stdout)}
    run = NodeRun(label, proc.returncode, output, counts)
    RUNS.append(run)
    return run
