"""The Python examples of the service pages in docs/ run as written against a real server.

Only pages whose every ``python`` block is a whole program are listed (the address is the only thing
changed); the README's blocks are run by ``test_readme.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import CoordUnderTest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ("cache.md",)
BLOCKS = [
    (page, index, code)
    for page in PAGES
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", (DOCS / page).read_text("utf-8"), re.S))
]


@pytest.mark.parametrize(("page", "index", "code"), BLOCKS, ids=[f"{p}-{i}" for p, i, _ in BLOCKS])
def test_docs_python_example_runs(coord_single: CoordUnderTest, page: str, index: int, code: str) -> None:
    code = code.replace("127.0.0.1:50051", coord_single.target)
    exec(compile(code, f"docs/{page} python block {index}", "exec"), {"__name__": "docs_example"})
