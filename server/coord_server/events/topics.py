"""Topic names, patterns and event ids: the grammar of the Events service, with no I/O.

A topic name is tokens separated by ``.``; a token is ASCII letters, digits, ``_``, ``-``, ``:`` and
``/``. A pattern may also use ``*`` for exactly one token and a final ``>`` for one or more trailing
tokens. An event id is a Redis Stream id ``<ms>-<seq>``, held here as a pair of integers so ids compare
numerically (as strings, "9-0" would sort after "10-0").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NAME_BYTES = 255
_TOKEN = re.compile(r"^[A-Za-z0-9_\-:/]+$")
_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")
_U64 = (1 << 64) - 1

StreamId = tuple[int, int]
ZERO_ID: StreamId = (0, 0)


def parse_id(text: str) -> StreamId | None:
    """``"<ms>-<seq>"`` or ``"<ms>"`` (meaning ``<ms>-0``) as a pair; None when malformed."""
    match = _ID.match(text)
    if not match:
        return None
    ms, seq = int(match.group(1)), int(match.group(2) or 0)
    if ms > _U64 or seq > _U64:
        return None
    return ms, seq


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def id_before_time(ms: int) -> StreamId:
    """The largest id below every id of millisecond ``ms``: reading after it starts at ``ms``."""
    return (ms - 1, _U64) if ms > 0 else ZERO_ID


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid topic name, or None when it is."""
    return _problem(name, allow_wildcards=False)


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid topic name or pattern, or None when it is."""
    return _problem(pattern, allow_wildcards=True)


def _problem(text: str, *, allow_wildcards: bool) -> str | None:
    if not text:
        return "must not be empty"
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes; the limit is {MAX_NAME_BYTES} bytes"
    tokens = text.split(".")
    for i, token in enumerate(tokens):
        if allow_wildcards and token == "*":
            continue
        if allow_wildcards and token == ">":
            if i != len(tokens) - 1:
                return "'>' may only be the last token"
            continue
        if not token:
            return "must not have an empty token (leading, trailing or doubled '.')"
        if not _TOKEN.match(token):
            what = "a name" if not allow_wildcards else "a pattern"
            return (
                f"token {token!r} is not valid in {what}: use ASCII letters, digits, '_', '-', ':', '/'"
                + (" or a whole-token '*' / final '>'" if allow_wildcards else "")
            )
    return None


def is_pattern(text: str) -> bool:
    return any(token in ("*", ">") for token in text.split("."))


@dataclass(frozen=True)
class Pattern:
    """A compiled topic pattern (valid by construction: check ``pattern_problem`` first)."""

    text: str

    @property
    def literal_prefix(self) -> str:
        """The longest prefix every matching name starts with (for range scans of the registry)."""
        tokens: list[str] = []
        for token in self.text.split("."):
            if token in ("*", ">"):
                return ".".join(tokens) + "." if tokens else ""
            tokens.append(token)
        return self.text

    def matches(self, name: str) -> bool:
        want = self.text.split(".")
        have = name.split(".")
        for i, token in enumerate(want):
            if token == ">":
                return len(have) > i
            if i >= len(have) or (token != "*" and token != have[i]):
                return False
        return len(have) == len(want)
