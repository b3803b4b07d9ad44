"""The README's Python examples run as written against a real server (only the address changes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import CoordUnderTest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(coord_single: CoordUnderTest, index: int) -> None:
    code = BLOCKS[index].replace("127.0.0.1:50051", coord_single.target)
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme_example"})


def test_readme_has_examples_for_every_service() -> None:
    text = "\n".join(BLOCKS)
    for api in ("client.cache.", "client.lock.", "client.limit(", "client.session.", "client.events."):
        assert api in text, api
