"""MapService transport: proto -> validated values -> store -> proto. No Redis calls here."""

from __future__ import annotations

import math
from typing import Any

import grpc

from coord.collections.v1 import map_pb2, map_pb2_grpc

from ..._grpc import rpc
from ...errors import invalid
from ...tenancy import PerTenant
from ...validation import Limits
from .._transport import cursor_of, name_of, next_cursor, page_of, state_pb, ttl_of, write_of
from ..common import REPLY_MARGIN
from .store import MapStore

Ctx = grpc.aio.ServicerContext[Any, Any]


class MapServicer(map_pb2_grpc.MapServiceServicer):
    def __init__(self, stores: PerTenant[MapStore], limits: Limits, max_reply_bytes: int) -> None:
        self._stores = stores
        self._limits = limits
        # gRPC refuses to send a larger reply: reads are bounded by it before values leave Redis.
        self._max_reply = max_reply_bytes - REPLY_MARGIN

    @rpc
    async def Set(self, request: map_pb2.MapServiceSetRequest, context: Ctx) -> map_pb2.MapServiceSetResponse:
        name = name_of(self._limits, request.name)
        self._limits.batch("fields", len(request.fields))
        fields = [
            (
                self._limits.key(f"fields[{i}].field", f.field),
                self._limits.value(f"fields[{i}].value", f.value),
            )
            for i, f in enumerate(request.fields)
        ]
        write = write_of(self._limits, request.options)
        written, added = await self._stores.get().set(name, fields, write)
        return map_pb2.MapServiceSetResponse(
            collection=state_pb(written.state), applied=written.applied, added=added
        )

    @rpc
    async def Get(self, request: map_pb2.MapServiceGetRequest, context: Ctx) -> map_pb2.MapServiceGetResponse:
        name = name_of(self._limits, request.name)
        fields = self._fields(request.fields)
        state, values = await self._stores.get().get(name, fields, self._max_reply)
        return map_pb2.MapServiceGetResponse(
            collection=state_pb(state),
            values=[
                map_pb2.MapValue(field=f, found=False)
                if v is None
                else map_pb2.MapValue(field=f, found=True, value=v)
                for f, v in zip(fields, values, strict=True)
            ],
        )

    @rpc
    async def GetAll(
        self, request: map_pb2.MapServiceGetAllRequest, context: Ctx
    ) -> map_pb2.MapServiceGetAllResponse:
        name = name_of(self._limits, request.name)
        cursor = cursor_of("cursor", request.cursor)
        size = page_of(self._limits, "page_size", request.page_size)
        page = await self._stores.get().get_all(name, cursor, size, self._max_reply)
        return map_pb2.MapServiceGetAllResponse(
            collection=state_pb(page.state),
            fields=[map_pb2.MapField(field=f, value=v) for f, v in page.fields],
            next_cursor=next_cursor(page.cursor),
        )

    @rpc
    async def Remove(
        self, request: map_pb2.MapServiceRemoveRequest, context: Ctx
    ) -> map_pb2.MapServiceRemoveResponse:
        name = name_of(self._limits, request.name)
        fields = self._fields(request.fields)
        write = write_of(self._limits, request.options)
        written, removed = await self._stores.get().remove(name, fields, write)
        return map_pb2.MapServiceRemoveResponse(
            collection=state_pb(written.state), applied=written.applied, removed=removed
        )

    @rpc
    async def Increment(
        self, request: map_pb2.MapServiceIncrementRequest, context: Ctx
    ) -> map_pb2.MapServiceIncrementResponse:
        name = name_of(self._limits, request.name)
        field = self._limits.key("field", request.field)
        delta: int | float = request.delta
        if request.WhichOneof("by") == "float_delta":
            delta = request.float_delta
            if not math.isfinite(delta):
                raise invalid("float_delta", f"must be a finite number (got {delta})")
        write = write_of(self._limits, request.options)
        result = await self._stores.get().increment(name, field, delta, write)
        response = map_pb2.MapServiceIncrementResponse(
            collection=state_pb(result.written.state), applied=result.written.applied
        )
        if isinstance(result.value, float):
            response.float_value = result.value
        elif result.value is not None:
            response.int_value = result.value
        return response

    @rpc
    async def Length(
        self, request: map_pb2.MapServiceLengthRequest, context: Ctx
    ) -> map_pb2.MapServiceLengthResponse:
        state = await self._stores.get().length(name_of(self._limits, request.name))
        return map_pb2.MapServiceLengthResponse(collection=state_pb(state))

    @rpc
    async def Delete(
        self, request: map_pb2.MapServiceDeleteRequest, context: Ctx
    ) -> map_pb2.MapServiceDeleteResponse:
        result = await self._stores.get().delete(name_of(self._limits, request.name), request.if_version)
        return map_pb2.MapServiceDeleteResponse(deleted=result.deleted, collection=state_pb(result.state))

    @rpc
    async def Touch(
        self, request: map_pb2.MapServiceTouchRequest, context: Ctx
    ) -> map_pb2.MapServiceTouchResponse:
        name = name_of(self._limits, request.name)
        state = await self._stores.get().touch(name, ttl_of(self._limits, "ttl", request.ttl))
        return map_pb2.MapServiceTouchResponse(collection=state_pb(state))

    def _fields(self, fields: Any) -> list[str]:
        self._limits.batch("fields", len(fields))
        return [self._limits.key(f"fields[{i}]", f) for i, f in enumerate(fields)]
