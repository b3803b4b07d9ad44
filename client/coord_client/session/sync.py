"""The sync Session client, :class:`SessionAPI`, reached as ``Client(...).session``. Every call is
built and read by :mod:`._codec`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from coord.session.v1 import session_pb2_grpc

from .._base import Transport
from .._call import SyncService
from . import _codec
from .models import NewSession, Rotation, Session, SessionPage, UpdateResult, Validation


class SessionAPI(SyncService):
    """Sync access to ``coord.session.v1.SessionService``; reached as ``Client(...).session``.

    Failures raise :class:`coord_client.CoordError` subclasses; bad arguments raise ValueError before
    anything is sent. Tokens are never part of an exception message.
    """

    def __init__(self, transport: Transport) -> None:
        stub = session_pb2_grpc.SessionServiceStub(transport.channel)
        super().__init__(transport, stub, _codec.SERVICE)

    def create(
        self,
        subject: str = "",
        attributes: Mapping[str, bytes] | None = None,
        *,
        idle: float | None = None,
        absolute: float | None = None,
        max_sessions: int = 0,
        on_limit: str = "reject",
        ip: str = "",
        user_agent: str = "",
        label: str = "",
        timeout: float | None = None,
    ) -> NewSession:
        """Start a session; ``idle``/``absolute`` are timeouts in seconds (None: server defaults).

        With ``max_sessions``, ``on_limit="reject"`` raises ResourceExhausted (reason
        SESSION_LIMIT_REACHED) when the subject is full; ``"evict_oldest"`` revokes its oldest.
        """
        call = _codec.create(
            subject=subject,
            attributes=attributes,
            idle=idle,
            absolute=absolute,
            max_sessions=max_sessions,
            on_limit=on_limit,
            ip=ip,
            user_agent=user_agent,
            label=label,
        )
        return self._send(call, timeout)

    def validate(
        self,
        token: str,
        *,
        touch: bool = True,
        attributes: Iterable[str] | str = (),
        timeout: float | None = None,
    ) -> Validation:
        """Check ``token``; ``attributes`` lists the names to return, or ``"*"`` for all."""
        return self._send(_codec.validate(token, touch, attributes), timeout)

    def update(
        self,
        token: str,
        *,
        set: Mapping[str, bytes] | None = None,
        remove: Iterable[str] = (),
        increment: Mapping[str, int] | None = None,
        if_version: int | None = None,
        touch: bool = False,
        timeout: float | None = None,
    ) -> UpdateResult:
        """Change individual attributes; other attributes (and concurrent updates of them) are kept."""
        call = _codec.update(
            token=token, set=set, remove=remove, increment=increment, if_version=if_version, touch=touch
        )
        return self._send(call, timeout)

    def rotate(self, token: str, *, grace: float | None = None, timeout: float | None = None) -> Rotation:
        """Give the session a new token; the old one works for ``grace`` seconds more.

        ``grace`` None is the server's default (30 s unless configured); 0 ends the old token at once.
        A grace serves requests already on their way with the old token (a page's parallel calls).
        """
        return self._send(_codec.rotate(token, grace), timeout)

    def rotate_on_login(self, token: str, *, timeout: float | None = None) -> Rotation:
        """Rotate with no grace, as a login (or any privilege change) must: against session fixation.

        A token handed out before the login (possibly planted by an attacker) stops working at once,
        so only the token returned here carries the login's rights.
        """
        return self._send(_codec.rotate(token, 0.0), timeout)

    def revoke(
        self, token: str | None = None, *, session_id: str | None = None, timeout: float | None = None
    ) -> bool:
        """End one session (by token, or by id); True if a live session was ended."""
        return self._send(_codec.revoke(token, session_id), timeout)

    def list(
        self, subject: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> SessionPage:
        """One page of ``subject``'s live sessions, oldest first."""
        return self._send(_codec.list_sessions(subject, page_size, page_token), timeout)

    def iter_sessions(self, subject: str, *, page_size: int = 0) -> Iterator[Session]:
        """Every live session of ``subject``, fetching pages as needed."""
        token = ""
        while True:
            page = self.list(subject, page_size=page_size, page_token=token)
            yield from page.sessions
            token = page.next_page_token
            if not token:
                return

    def revoke_all(self, subject: str, *, except_session_id: str = "", timeout: float | None = None) -> int:
        """End all of ``subject``'s sessions except ``except_session_id``; returns how many ended."""
        return self._send(_codec.revoke_all(subject, except_session_id), timeout)


__all__ = ["SessionAPI"]
