"""ScriptSet: scripts from package data, with ``-- @include`` libraries composed once at load."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from coord_server.redis import ScriptLoadError, ScriptSet

_names = itertools.count()


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], str]:
    """``package({file name: text})``: a fresh importable package holding those scripts; its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(scripts: dict[str, str]) -> str:
        name = f"coord_lua_fixture_{next(_names)}"
        folder = tmp_path / name / "scripts"
        folder.mkdir(parents=True)
        (tmp_path / name / "__init__.py").write_text("")
        for file, text in scripts.items():
            (folder / file).write_text(text)
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return make


def test_an_include_is_replaced_by_the_library_and_libraries_are_not_scripts(
    package: Callable[[dict[str, str]], str],
) -> None:
    scripts = ScriptSet(
        package(
            {
                "_lib.lua": "local function two() return 2 end",
                "one.lua": "--[[ One. ]]\n-- @include _lib\nreturn two()\n",
            }
        )
    )
    assert scripts.names() == ["one"]
    assert scripts["one"].source == "--[[ One. ]]\nlocal function two() return 2 end\nreturn two()\n"
    with pytest.raises(KeyError):
        scripts["_lib"]


def test_libraries_may_include_libraries_and_each_goes_in_once(
    package: Callable[[dict[str, str]], str],
) -> None:
    scripts = ScriptSet(
        package(
            {
                "_base.lua": "local zero = 0\n",
                "_a.lua": "-- @include _base\nlocal a = zero + 1\n",
                "_b.lua": "-- @include _base\nlocal b = zero + 2\n",
                "both.lua": "-- @include _a\n-- @include _b\nreturn a + b\n",
            }
        )
    )
    source = scripts["both"].source
    assert source.count("local zero = 0") == 1
    assert (
        source.index("local zero")
        < source.index("local a")
        < source.index("local b")
        < source.index("return")
    )
    assert "@include" not in source


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"one.lua": "-- @include _missing\nreturn 1"}, "no _missing.lua"),
        ({"one.lua": "-- @include two\nreturn 1", "two.lua": "return 2"}, "only libraries"),
        ({"_a.lua": "-- @include _b", "_b.lua": "-- @include _a", "one.lua": "-- @include _a"}, "cycle"),
        ({"_a.lua": "-- @include _gone", "one.lua": "return 1"}, "no _gone.lua"),  # even if unused
        ({"_only.lua": "local x = 1"}, "no Lua scripts"),
    ],
)
def test_a_broken_composition_fails_at_load(
    package: Callable[[dict[str, str]], str], files: dict[str, str], message: str
) -> None:
    with pytest.raises(ScriptLoadError, match=message):
        ScriptSet(package(files))


def test_the_sha_is_the_composed_sources(package: Callable[[dict[str, str]], str]) -> None:
    import hashlib

    scripts = ScriptSet(package({"_lib.lua": "local x = 1", "one.lua": "-- @include _lib\nreturn x"}))
    assert scripts["one"].sha == hashlib.sha1(b"local x = 1\nreturn x").hexdigest()
