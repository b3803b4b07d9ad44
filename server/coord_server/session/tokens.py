"""Session ids and tokens: what Coord mints, their formats, and the digest Redis keeps instead.

A session id is ``<bucket: 3 hex digits><22 base64url characters>`` (128 random bits), so it names
the bucket (see :mod:`.keys`) its keys live in. A token is ``cs1_<session id><43 base64url
characters>`` (256 random bits from :mod:`secrets`). The token thus names its session without Redis
storing it: Redis holds only SHA-256(token).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

from .keys import BUCKETS

TOKEN_PREFIX = "cs1_"
_B64 = "[A-Za-z0-9_-]"
_SESSION_ID = re.compile(rf"^([0-9a-f]{{3}}){_B64}{{22}}$")
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}([0-9a-f]{{3}}{_B64}{{22}})({_B64}{{43}})$")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_session_id(bucket: int) -> str:
    """A fresh, random session id in ``bucket``."""
    return f"{bucket:03x}{_b64(secrets.token_bytes(16))}"


def session_bucket(session_id: str) -> int | None:
    """The bucket a well-formed session id lives in, or None for a malformed one."""
    match = _SESSION_ID.match(session_id)
    if not match:
        return None
    bucket = int(match.group(1), 16)
    return bucket if bucket < BUCKETS else None


def new_token(session_id: str) -> str:
    """A fresh token for ``session_id``; only its :func:`token_digest` may be stored."""
    return TOKEN_PREFIX + session_id + _b64(secrets.token_bytes(32))


def token_digest(token: str) -> str:
    """What Redis stores instead of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class ParsedToken:
    session_id: str
    bucket: int
    digest: str

    def __repr__(self) -> str:  # never print a token; the digest is all that is kept
        return f"ParsedToken(session_id={self.session_id!r})"


def parse_token(token: str) -> ParsedToken | None:
    """The session a well-formed token names, or None for a malformed one."""
    match = _TOKEN.match(token)
    if not match:
        return None
    bucket = int(match.group(1)[:3], 16)
    if bucket >= BUCKETS:
        return None
    return ParsedToken(match.group(1), bucket, token_digest(token))
