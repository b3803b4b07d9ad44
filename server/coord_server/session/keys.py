"""Every Redis key the Session service writes, and the token and session id formats that lead to them.

Sessions live in buckets. A bucket is a routing tag, not a secret: for a subject it is derived from
the subject (SHA-256, modulo :data:`BUCKETS`), for an anonymous session it is random. All keys of a
bucket share the hash tag ``{b<n>}``, so every script touches one Redis Cluster slot, and a subject's
sessions, its index and its limit are always decided together.

``coord:<tenant>:session:{b<n>}:m``            HASH  session id -> msgpack record (subject, times,
                                                     version, token digests, client info, state)
``coord:<tenant>:session:{b<n>}:a``            HASH  session id -> msgpack map of attributes
``coord:<tenant>:session:{b<n>}:x``            ZSET  session id -> end ms: the expiry deadline of a live
                                                     session, the end time of an ended one. Scripts purge
                                                     entries whose end is older than the tombstone TTL.
``coord:<tenant>:session:{b<n>}:u:<subject>``  ZSET  session id -> created ms, the subject's live sessions

The three bucket keys expire when the latest end in ``x`` plus the tombstone TTL has passed; the
subject index expires at the latest absolute deadline of the sessions it has held.

A session id is ``<bucket: 3 hex digits><22 base64url characters>`` (128 random bits). A token is
``cs1_<session id><43 base64url characters>`` (256 random bits from :mod:`secrets`). The token thus
names its session without Redis storing it: Redis holds only SHA-256(token).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

from ..keys import hash_tag, service_prefix

BUCKETS = 1024
TOKEN_PREFIX = "cs1_"
_B64 = "[A-Za-z0-9_-]"
_SESSION_ID = re.compile(rf"^([0-9a-f]{{3}}){_B64}{{22}}$")
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}([0-9a-f]{{3}}{_B64}{{22}})({_B64}{{43}})$")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def subject_bucket(subject: str) -> int:
    """The bucket of every session of ``subject``."""
    digest = hashlib.sha256(b"coord.session.bucket\x00" + subject.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") % BUCKETS


def new_session_id(bucket: int) -> str:
    return f"{bucket:03x}{_b64(secrets.token_bytes(16))}"


def new_token(session_id: str) -> str:
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


def session_bucket(session_id: str) -> int | None:
    """The bucket a well-formed session id lives in, or None for a malformed one."""
    match = _SESSION_ID.match(session_id)
    if not match:
        return None
    bucket = int(match.group(1), 16)
    return bucket if bucket < BUCKETS else None


class SessionKeys:
    def __init__(self, tenant: str) -> None:
        self._prefix = service_prefix(tenant, "session")

    def bucket(self, bucket: int) -> tuple[str, str, str]:
        """The records, attributes and ends keys of ``bucket``."""
        base = self._prefix + hash_tag(f"b{bucket}")
        return base + ":m", base + ":a", base + ":x"

    def subject(self, bucket: int, subject: str) -> str:
        return self._prefix + hash_tag(f"b{bucket}") + ":u:" + subject
