"""docs/reliability.md names real tests: every node id in its tables is one pytest collects.

A cell may name a test in full (``tests/x.py::test_y[param]``) and then further parameters of the same
test alone (``[other-param]``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"


def _named() -> list[str]:
    ids: list[str] = []
    last = ""
    for token in re.findall(r"`([^`]+)`", DOC.read_text("utf-8")):
        if token.startswith("tests/") and "::" in token:
            ids.append(token)
            last = token.split("[", 1)[0]
        elif re.fullmatch(r"\[[\w.-]+\]", token) and last:
            ids.append(last + token)
    return ids


def test_every_test_the_page_names_exists() -> None:
    named = _named()
    assert len(named) > 40, "the scan found too few node ids: is the table still there?"
    files = sorted({i.split("::", 1)[0] for i in named})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    collected = set(done.stdout.split())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(set(named) - collected) == []
