"""The string layout of a cache entry (server/coord_server/cache/scripts/_entry.lua), decoded in Python
for tests that look at what Redis holds, and the old hash layout, written as the old set.lua did."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import redis

TAGS, FENCES, GRACE, COST = 1, 2, 4, 8
FIXED = struct.Struct("<B7s6s")  # flags, version (7 bytes), expiry ms (6 bytes)


@dataclass(frozen=True)
class Stored:
    """One entry (or tombstone) as the string layout holds it."""

    flags: int
    version: int
    expire_ms: int
    grace_ms: int = 0
    compute_ms: int = 0
    fences: dict[str, int] | None = None
    tags: bytes | None = None  # tags.py's field t
    value: bytes = b""
    header_len: int = 0


def _pairs(blob: bytes) -> dict[str, int]:
    parts = blob.decode().split("\n")
    return {parts[i]: int(parts[i + 1]) for i in range(0, len(parts), 2)}


def decode(raw: bytes) -> Stored:
    flags, version, expiry = FIXED.unpack_from(raw)
    pos = FIXED.size
    optional = {}
    for flag in (GRACE, COST, FENCES, TAGS):
        if flags & flag:
            optional[flag] = int.from_bytes(raw[pos : pos + 4], "little")
            pos += 4
    fences = tags = None
    if flags & FENCES:
        fences = _pairs(raw[pos : pos + optional[FENCES]])
        pos += optional[FENCES]
    if flags & TAGS:
        tags = raw[pos : pos + optional[TAGS]]
        pos += optional[TAGS]
    return Stored(
        flags,
        int.from_bytes(version, "little"),
        int.from_bytes(expiry, "little"),
        optional.get(GRACE, 0),
        optional.get(COST, 0),
        fences,
        tags,
        raw[pos:],
        pos,
    )


def read(r: redis.Redis, key: str) -> Stored | None:
    """The entry at ``key`` (a string of the current layout), or None when there is none."""
    raw = r.get(key)
    return None if raw is None else decode(raw)


def write_old(
    r: redis.Redis,
    key: str,
    *,
    value: bytes | None,
    version: int,
    expire_ms: int,
    tags: str = "",
    fences: dict[str, int] | None = None,
) -> None:
    """A hash as the old set.lua (``value``) or the old delete.lua (``value=None``: a tombstone) left
    it: v, ver, x, t, f:<lock>; PEXPIREAT = x (a test gives a tombstone its own TTL after)."""
    fields: dict[str, bytes | str] = {"ver": str(version), "x": str(expire_ms)}
    if value is not None:
        fields["v"] = value
    if tags:
        fields["t"] = tags
    for lock, token in (fences or {}).items():
        fields[f"f:{lock}"] = str(token)
    r.delete(key)
    r.hset(key, mapping=fields)
    r.pexpireat(key, expire_ms)
