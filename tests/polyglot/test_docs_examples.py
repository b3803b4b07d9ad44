"""The Node examples of docs/clients.md, run as written against a real Coord.

Every ```js block of the page that starts with ``// file: <name>`` is written to a scratch folder;
each ``*-example.js`` then runs from the repository root (the examples read ``protos/`` and the
service config by relative path), with the suite's node_modules on NODE_PATH.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ..conftest import CoordUnderTest
from ._node import NODE_DIR, node_binary

REPO = NODE_DIR.parents[1]
PAGE = REPO / "docs" / "clients.md"
_BLOCK = re.compile(r"```js\n// file: (?P<name>[\w.-]+)\n(?P<body>.*?)```", re.DOTALL)


def _files() -> dict[str, str]:
    return {m["name"]: f"// file: {m['name']}\n{m['body']}" for m in _BLOCK.finditer(PAGE.read_text("utf-8"))}


EXAMPLES = sorted(name for name in _files() if name.endswith("-example.js"))


def test_the_page_has_an_example_per_service() -> None:
    assert "coord-client.js" in _files()
    assert [f"{s}-example.js" for s in ("cache", "events", "lock", "ratelimit", "session")] == EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES)
def test_docs_node_example_runs(example: str, coord_single: CoordUnderTest, tmp_path: Path) -> None:
    for name, text in _files().items():
        (tmp_path / name).write_text(text, "utf-8")
    env = {**os.environ, "COORD_TARGET": coord_single.target, "NODE_PATH": str(NODE_DIR / "node_modules")}
    proc = subprocess.run(
        [node_binary(), str(tmp_path / example)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == "", proc.stderr
    print(proc.stdout)
