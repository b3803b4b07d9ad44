"""The asyncio Session client, :class:`AsyncSessionAPI`, reached as ``AsyncClient(...).session``.

Its methods are those of :class:`~.sync.SessionAPI`, taken over with :func:`~coord_client._call.awaiting`:
written once, they return a coroutine here (arguments are checked when the method is called). Only
``iter_sessions``, which waits between pages, is written again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from coord.session.v1 import session_pb2_grpc

from .._base import AsyncTransport
from .._call import AsyncService, awaiting
from . import _codec
from .models import Session
from .sync import SessionAPI


class AsyncSessionAPI(AsyncService):
    """Asyncio access to ``coord.session.v1.SessionService``; reached as ``AsyncClient(...).session``.

    The methods of :class:`~coord_client.session.SessionAPI` (same arguments, results and errors),
    as coroutines.
    """

    def __init__(self, transport: AsyncTransport) -> None:
        stub = session_pb2_grpc.SessionServiceStub(transport.channel)
        super().__init__(transport, stub, _codec.SERVICE)

    create = awaiting(SessionAPI.create)
    validate = awaiting(SessionAPI.validate)
    update = awaiting(SessionAPI.update)
    rotate = awaiting(SessionAPI.rotate)
    rotate_on_login = awaiting(SessionAPI.rotate_on_login)
    revoke = awaiting(SessionAPI.revoke)
    list = awaiting(SessionAPI.list)
    revoke_all = awaiting(SessionAPI.revoke_all)

    async def iter_sessions(self, subject: str, *, page_size: int = 0) -> AsyncIterator[Session]:
        """Every live session of ``subject``, fetching pages as needed."""
        token = ""
        while True:
            page = await self.list(subject, page_size=page_size, page_token=token)
            for session in page.sessions:
                yield session
            token = page.next_page_token
            if not token:
                return


__all__ = ["AsyncSessionAPI"]
