"""The asyncio Admin client, :class:`AsyncAdminAPI`, reached as ``AsyncClient(...).admin``."""

from __future__ import annotations

from coord.admin.v1 import admin_pb2_grpc

from .._base import AsyncTransport
from .._call import AsyncService, awaiting
from . import _codec
from .sync import AdminAPI


class AsyncAdminAPI(AsyncService):
    """The methods of :class:`~coord_client.admin.AdminAPI`, as coroutines."""

    def __init__(self, transport: AsyncTransport) -> None:
        stub = admin_pb2_grpc.AdminServiceStub(transport.channel)
        super().__init__(transport, stub, _codec.SERVICE)

    get_stats = awaiting(AdminAPI.get_stats)
