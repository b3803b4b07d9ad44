"""ListService transport: proto -> validated values -> store -> proto. No Redis calls here."""

from __future__ import annotations

from typing import Any

import grpc

from coord.collections.v1 import list_pb2, list_pb2_grpc

from ..._grpc import rpc
from ...errors import invalid
from ...tenancy import PerTenant
from ...validation import Limits, duration_within
from .._transport import count_of, name_of, state_pb, ttl_of, write_of
from .store import End, ListStore

Ctx = grpc.aio.ServicerContext[Any, Any]

_ENDS = {list_pb2.End.END_FRONT: End.FRONT, list_pb2.End.END_BACK: End.BACK}


def _end_of(end: list_pb2.End.ValueType, default: End) -> End:
    """A request's ``end``: the method's default when unspecified."""
    if end == list_pb2.End.END_UNSPECIFIED:
        return default
    chosen = _ENDS.get(end)
    if chosen is None:
        raise invalid("end", f"unknown End {end}")
    return chosen


class ListServicer(list_pb2_grpc.ListServiceServicer):
    def __init__(self, stores: PerTenant[ListStore], limits: Limits) -> None:
        self._stores = stores
        self._limits = limits

    @rpc
    async def Push(
        self, request: list_pb2.ListServicePushRequest, context: Ctx
    ) -> list_pb2.ListServicePushResponse:
        name = name_of(self._limits, request.name)
        self._limits.batch("values", len(request.values))
        values = [self._limits.value(f"values[{i}]", v) for i, v in enumerate(request.values)]
        end = _end_of(request.end, End.BACK)
        if request.max_length < 0:
            raise invalid("max_length", f"must not be negative (got {request.max_length})")
        write = write_of(self._limits, request.options)
        pushed = await self._stores.get().push(name, values, end, request.max_length, write)
        return list_pb2.ListServicePushResponse(
            collection=state_pb(pushed.written.state), applied=pushed.written.applied, trimmed=pushed.trimmed
        )

    @rpc
    async def Pop(
        self, request: list_pb2.ListServicePopRequest, context: Ctx
    ) -> list_pb2.ListServicePopResponse:
        name = name_of(self._limits, request.name)
        end = _end_of(request.end, End.FRONT)
        count = count_of(self._limits, "count", request.count)
        wait_ms = duration_within("wait", request.wait, 0, self._limits.max_ttl_ms)
        write = write_of(self._limits, request.options)
        if wait_ms and write.if_version:
            raise invalid("options.if_version", "cannot be combined with a wait (leave one of them unset)")
        popped = await self._stores.get().pop(name, end, count, write, wait_ms / 1000)
        return list_pb2.ListServicePopResponse(
            collection=state_pb(popped.written.state), applied=popped.written.applied, values=popped.values
        )

    @rpc
    async def Range(
        self, request: list_pb2.ListServiceRangeRequest, context: Ctx
    ) -> list_pb2.ListServiceRangeResponse:
        name = name_of(self._limits, request.name)
        page = await self._stores.get().range(name, request.start, request.stop, self._limits.max_batch)
        response = list_pb2.ListServiceRangeResponse(collection=state_pb(page.state), values=page.values)
        if page.next_start >= 0:
            response.has_more = True
            response.next_start = page.next_start
        return response

    @rpc
    async def Length(
        self, request: list_pb2.ListServiceLengthRequest, context: Ctx
    ) -> list_pb2.ListServiceLengthResponse:
        state = await self._stores.get().length(name_of(self._limits, request.name))
        return list_pb2.ListServiceLengthResponse(collection=state_pb(state))

    @rpc
    async def Remove(
        self, request: list_pb2.ListServiceRemoveRequest, context: Ctx
    ) -> list_pb2.ListServiceRemoveResponse:
        name = name_of(self._limits, request.name)
        value = self._limits.value("value", request.value)
        write = write_of(self._limits, request.options)
        written, removed = await self._stores.get().remove(name, value, request.count, write)
        return list_pb2.ListServiceRemoveResponse(
            collection=state_pb(written.state), applied=written.applied, removed=removed
        )

    @rpc
    async def Trim(
        self, request: list_pb2.ListServiceTrimRequest, context: Ctx
    ) -> list_pb2.ListServiceTrimResponse:
        name = name_of(self._limits, request.name)
        write = write_of(self._limits, request.options)
        written, removed = await self._stores.get().trim(name, request.start, request.stop, write)
        return list_pb2.ListServiceTrimResponse(
            collection=state_pb(written.state), applied=written.applied, removed=removed
        )

    @rpc
    async def Delete(
        self, request: list_pb2.ListServiceDeleteRequest, context: Ctx
    ) -> list_pb2.ListServiceDeleteResponse:
        result = await self._stores.get().delete(name_of(self._limits, request.name), request.if_version)
        return list_pb2.ListServiceDeleteResponse(deleted=result.deleted, collection=state_pb(result.state))

    @rpc
    async def Touch(
        self, request: list_pb2.ListServiceTouchRequest, context: Ctx
    ) -> list_pb2.ListServiceTouchResponse:
        name = name_of(self._limits, request.name)
        state = await self._stores.get().touch(name, ttl_of(self._limits, "ttl", request.ttl))
        return list_pb2.ListServiceTouchResponse(collection=state_pb(state))
