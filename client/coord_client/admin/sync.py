"""The sync Admin client, :class:`AdminAPI`, reached as ``Client(...).admin``."""

from __future__ import annotations

from coord.admin.v1 import admin_pb2_grpc

from .._base import Transport
from .._call import SyncService
from .._convert import Seconds
from . import _codec
from .models import Stats


class AdminAPI(SyncService):
    """Sync access to ``coord.admin.v1.AdminService``; reached as ``Client(...).admin``.

    With authentication on, the caller needs the ``admin`` permission (``"*"`` does not grant it):
    without it, :class:`coord_client.PermissionDenied`.
    """

    def __init__(self, transport: Transport) -> None:
        stub = admin_pb2_grpc.AdminServiceStub(transport.channel)
        super().__init__(transport, stub, _codec.SERVICE)

    def get_stats(
        self, *, scan_budget: Seconds | None = None, sample_size: int = 0, timeout: float | None = None
    ) -> Stats:
        """What Coord keeps in Redis and how the server is set up.

        ``scan_budget`` bounds the time spent counting keys (None: the server's 1 s, at most 30 s);
        ``stats.scan.complete`` says whether every key was counted. ``sample_size`` keys per tenant
        and service are measured to estimate their memory (0: the server's 200, at most 1000).
        """
        return self._send(_codec.get_stats(scan_budget, sample_size), timeout)
