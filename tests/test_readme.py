"""The README's Python examples run as written against a real server (only the address changes)."""

from __future__ import annotations

import os
import re
import subprocess
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


# -- the README's two commands on a fresh machine ---------------------------------------------------

ROOT = README.parent
MAKEFILE = (ROOT / "Makefile").read_text()


def _two_commands() -> list[str]:
    section = README.read_text().split("## Two commands", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the Two commands section has no sh block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def _prerequisites(target: str) -> list[str]:
    """What ``target:`` lines list (target-specific variable lines left out), order-only ones too."""
    found: list[str] = []
    for line in MAKEFILE.splitlines():
        rule = re.match(rf"^{re.escape(target)}\s*:(?![=:])(.*)$", line)
        if rule and "=" not in rule.group(1):
            found += rule.group(1).replace("|", " ").split()
    return found


def _tools() -> dict[str, str]:
    """The deps table: command -> Debian package."""
    table = re.search(r"^TOOLS := \\\n((?:  \S+:\S+(?: \\)?\n)+)", MAKEFILE, re.M)
    assert table, "the Makefile has no TOOLS table"
    pairs = [line.strip().rstrip("\\").strip().split(":") for line in table.group(1).splitlines()]
    # The fragments of the other languages' packages (mk/*.mk) add theirs: `TOOLS += cmd:pkg ...`.
    for fragment in sorted((ROOT / "mk").glob("*.mk")):
        for added in re.findall(r"^TOOLS \+= (.+)$", fragment.read_text(), re.M):
            pairs.extend(pair.split(":") for pair in added.split())
    return {command: package for command, package in pairs}


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    # Not the jobserver or flags of a `make test` this suite may be running under.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_readme_two_commands_are_makefile_targets() -> None:
    assert _two_commands() == ["make run", "make test"]
    targets = set(re.findall(r"^([\w.-]+)\s*:(?![=:])", MAKEFILE, re.M))
    for command in _two_commands():
        assert command.split()[1] in targets, f"`{command}`: no such target in the Makefile"


def test_ci_runs_the_same_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    steps = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert [s for s in steps if s.startswith("make")] == ["make lint", "make test"]
    assert not [s for s in steps if "apt-get" in s], ".ci/run installs nothing itself: `make test` does"


def test_make_test_installs_its_tools_first() -> None:
    assert _prerequisites("test")[0] == "deps"
    assert "deps" in _prerequisites("test-polyglot")
    assert "deps" in _prerequisites("$(NODE_STAMP)")  # npm ci needs npm


def test_deps_installs_what_the_tests_look_for() -> None:
    tools = _tools()
    sources = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    looked_up = {
        name
        for path in sources
        if "node_modules" not in path.parts
        for name in re.findall(r"shutil\.which\(\"([\w.-]+)\"\)", path.read_text())
    }
    assert looked_up, "found no shutil.which lookups: the scan is broken"
    assert looked_up <= tools.keys(), f"not in the Makefile's TOOLS: {looked_up - tools.keys()}"
    makefiles = [MAKEFILE, *(f.read_text() for f in sorted((ROOT / "mk").glob("*.mk")))]
    recipes = "\n".join(line for text in makefiles for line in text.splitlines() if line.startswith("\t"))
    for command in tools.keys() - looked_up:  # the rest the Makefile's own recipes run (npm ci)
        assert re.search(rf"(^|[\s,]){re.escape(command)}[\s)]", recipes, re.M), f"{command}: used by nothing"


def test_deps_is_silent_when_all_is_there_and_names_the_one_install_line_otherwise() -> None:
    present = _make("deps")
    assert present.returncode == 0 and "apt-get" not in present.stdout + present.stderr, present

    tools = "redis-server:redis-server coord-absent-tool:coord-absent-package"
    refused = _make("deps", f"TOOLS={tools}", "AS_ROOT=")
    assert refused.returncode != 0 and "apt-get" not in refused.stdout
    [line] = refused.stderr.splitlines()
    assert line.endswith("run: sudo apt-get install -y coord-absent-package.  Stop."), line

    installs = _make("deps", f"TOOLS={tools}", "AS_ROOT=yes")  # -n: printed, not run
    assert installs.returncode == 0, installs
    assert installs.stdout.splitlines() == [
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coord-absent-package"
        " >/dev/null"
    ]
