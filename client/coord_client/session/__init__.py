"""The Session service: :class:`SessionAPI` (sync) and :class:`AsyncSessionAPI` (asyncio).

Both send the calls that ``_codec`` builds and parses; only the sending differs. An invalid token is
a normal result (a falsy :class:`Validation` with a ``reason``), not an exception. Times are
timezone-aware ``datetime`` values in UTC; durations are seconds (``float``).

    with Client() as client:
        new = client.session.create("user:42", {"role": b"admin"}, idle=1800, absolute=12 * 3600)
        set_cookie(new.token)                       # the only time the token is available
        v = client.session.validate(new.token, attributes=["role"])
        if v:
            print(v.session.subject, v.session.attributes["role"])
        client.session.update(new.token, set={"cart": b"[]"}, increment={"visits": 1})
        rotated = client.session.rotate_on_login(new.token)  # after login: the old token dies at once
        client.session.revoke(rotated.token)

The package: ``models`` (the results), ``_codec`` (request building and response parsing, shared),
``sync`` and ``aio`` (the two APIs).
"""

from ._codec import LIMIT_POLICIES, SERVICE
from .aio import AsyncSessionAPI
from .models import NewSession, Rotation, Session, SessionPage, UpdateResult, Validation
from .sync import SessionAPI

__all__ = [
    "LIMIT_POLICIES",
    "SERVICE",
    "AsyncSessionAPI",
    "NewSession",
    "Rotation",
    "Session",
    "SessionAPI",
    "SessionPage",
    "UpdateResult",
    "Validation",
]
