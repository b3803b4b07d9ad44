"""Lua scripts: one ``.lua`` file per atomic operation, loaded once from package data.

Scripts are called by SHA (EVALSHA). When Redis answers NOSCRIPT (after a restart, a failover or
SCRIPT FLUSH) the call is repeated once as EVAL with the source, which also re-caches the script on
the node that ran it, so the next EVALSHA succeeds there. No Lua source is ever built from input:
user data travels only in ARGV.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Script:
    """One Lua script: its file name (without ``.lua``), source and SHA1."""

    name: str
    source: str
    sha: str

    @classmethod
    def from_source(cls, name: str, source: str) -> Script:
        return cls(name, source, hashlib.sha1(source.encode()).hexdigest())


class ScriptSet:
    """All scripts of one service package, read from its ``scripts/`` folder."""

    def __init__(self, package: str) -> None:
        folder = resources.files(package).joinpath("scripts")
        self._scripts: dict[str, Script] = {}
        for entry in folder.iterdir():
            if entry.name.endswith(".lua"):
                name = entry.name.removesuffix(".lua")
                self._scripts[name] = Script.from_source(name, entry.read_text(encoding="utf-8"))
        if not self._scripts:
            raise RuntimeError(f"no Lua scripts found in {package}/scripts")

    def __getitem__(self, name: str) -> Script:
        return self._scripts[name]

    def __iter__(self) -> Iterator[Script]:
        return iter(self._scripts.values())

    def names(self) -> list[str]:
        return sorted(self._scripts)
