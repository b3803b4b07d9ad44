"""Every Redis key the Session service writes, and the bucket that routes a session to them.

Sessions live in buckets. A bucket is a routing tag, not a secret: for a subject it is derived from
the subject (SHA-256, modulo :data:`BUCKETS`), for an anonymous session it is random. All keys of a
bucket share the hash tag ``{b<n>}``, so every script touches one Redis Cluster slot, and a subject's
sessions, its index and its limit are always decided together. A session id begins with its bucket
(see :mod:`.tokens` for the id and token formats).

``coord:<tenant>:session:{b<n>}:m``            HASH  session id -> msgpack record (subject, times,
                                                     version, token digests, client info, state)
``coord:<tenant>:session:{b<n>}:a``            HASH  session id -> msgpack map of attributes
``coord:<tenant>:session:{b<n>}:x``            ZSET  session id -> end ms: the expiry deadline of a live
                                                     session, the end time of an ended one. Scripts purge
                                                     entries whose end is older than the tombstone TTL.
``coord:<tenant>:session:{b<n>}:u:<subject>``  ZSET  session id -> created ms, the subject's live sessions

The three bucket keys expire when the latest end in ``x`` plus the tombstone TTL has passed; the
subject index expires at the latest absolute deadline of the sessions it has held.
"""

from __future__ import annotations

import hashlib

from ..keys import hash_tag, service_prefix

BUCKETS = 1024


def subject_bucket(subject: str) -> int:
    """The bucket of every session of ``subject``."""
    digest = hashlib.sha256(b"coord.session.bucket\x00" + subject.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") % BUCKETS


class SessionKeys:
    def __init__(self, tenant: str) -> None:
        self._prefix = service_prefix(tenant, "session")

    def bucket(self, bucket: int) -> tuple[str, str, str]:
        """The records, attributes and ends keys of ``bucket``."""
        base = self._prefix + hash_tag(f"b{bucket}")
        return base + ":m", base + ":a", base + ":x"

    def subject(self, bucket: int, subject: str) -> str:
        return self._prefix + hash_tag(f"b{bucket}") + ":u:" + subject
