"""Lua scripts: one ``.lua`` file per atomic operation, loaded once from package data and composed.

Scripts are called by SHA (EVALSHA). When Redis answers NOSCRIPT (after a restart, a failover or
SCRIPT FLUSH) the call is repeated once as EVAL with the source, which also re-caches the script on
the node that ran it, so the next EVALSHA succeeds there (``backend.py``). No Lua source is ever
built from input: user data travels only in ARGV.

Shared Lua lives in libraries, composed into the scripts once, when the :class:`ScriptSet` loads (as
BullMQ's ``@include``):

- A file whose name starts with ``_`` (``_lib.lua``) is a library: never a script of its own.
- A line that is exactly ``-- @include <name>`` (a Lua comment, so the file still parses alone)
  is replaced by the text of the library ``<name>.lua`` in the same ``scripts/`` folder. By
  convention it comes right after the script's contract header, so the header still opens the
  composed source.
- Libraries may include libraries. Each library goes into a script at most once: a second include
  of the same one is dropped, so two libraries may both include a third.
- An include of a missing file, of a file that is not a library, or a cycle fails the load with
  :class:`ScriptLoadError`, so a broken composition stops the server at start-up.

What Redis runs (and what the SHA is taken of) is the composed source.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources

# The include directive: a whole line, "-- @include _name" (surrounding blanks allowed).
INCLUDE = re.compile(r"^[ \t]*-- @include[ \t]+(\S+)[ \t]*$", re.MULTILINE)


class ScriptLoadError(RuntimeError):
    """A service's scripts cannot be composed (a missing or bad include, a cycle, no scripts)."""


@dataclass(frozen=True)
class Script:
    """One Lua script: its file name (without ``.lua``), composed source and SHA1."""

    name: str
    source: str
    sha: str

    @classmethod
    def from_source(cls, name: str, source: str) -> Script:
        return cls(name, source, hashlib.sha1(source.encode()).hexdigest())


def compose(name: str, files: Mapping[str, str]) -> str:
    """The source of ``files[name]`` with every include replaced by its library's (composed) text."""
    included: set[str] = set()

    def expand(current: str, chain: tuple[str, ...]) -> str:
        def replace(match: re.Match[str]) -> str:
            library = match.group(1)
            where = f"{current}.lua includes {library!r}"
            if not library.startswith("_"):
                raise ScriptLoadError(f"{where}: only libraries (files named _*.lua) can be included")
            if library in chain:
                raise ScriptLoadError(f"{where}: an include cycle ({' -> '.join((*chain, library))})")
            if library not in files:
                raise ScriptLoadError(f"{where}: there is no {library}.lua next to it")
            if library in included:
                return ""  # already in this script: once is enough
            included.add(library)
            return expand(library, (*chain, library)).rstrip("\n")

        return INCLUDE.sub(replace, files[current])

    return expand(name, (name,))


class ScriptSet:
    """All scripts of one service package, read from its ``scripts/`` folder and composed."""

    def __init__(self, package: str) -> None:
        folder = resources.files(package).joinpath("scripts")
        files = {
            entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
            for entry in folder.iterdir()
            if entry.name.endswith(".lua")
        }
        self._scripts: dict[str, Script] = {}
        for name in sorted(files):
            source = compose(name, files)  # libraries too: a broken one fails even if unused
            if not name.startswith("_"):
                self._scripts[name] = Script.from_source(name, source)
        if not self._scripts:
            raise ScriptLoadError(f"no Lua scripts found in {package}/scripts")

    def __getitem__(self, name: str) -> Script:
        return self._scripts[name]

    def __iter__(self) -> Iterator[Script]:
        return iter(self._scripts.values())

    def names(self) -> list[str]:
        return sorted(self._scripts)
