"""SetService transport: proto -> validated values -> store -> proto. No Redis calls here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from coord.collections.v1 import set_pb2, set_pb2_grpc

from ..._grpc import rpc
from ...tenancy import PerTenant
from ...validation import Limits
from .._transport import count_of, cursor_of, name_of, next_cursor, page_of, state_pb, ttl_of, write_of
from .store import SetStore

Ctx = grpc.aio.ServicerContext[Any, Any]


class SetServicer(set_pb2_grpc.SetServiceServicer):
    def __init__(self, stores: PerTenant[SetStore], limits: Limits) -> None:
        self._stores = stores
        self._limits = limits

    @rpc
    async def Add(self, request: set_pb2.SetServiceAddRequest, context: Ctx) -> set_pb2.SetServiceAddResponse:
        name = name_of(self._limits, request.name)
        members = self._members(request.members)
        write = write_of(self._limits, request.options)
        written, added = await self._stores.get().add(name, members, write)
        return set_pb2.SetServiceAddResponse(
            collection=state_pb(written.state), applied=written.applied, added=added
        )

    @rpc
    async def Remove(
        self, request: set_pb2.SetServiceRemoveRequest, context: Ctx
    ) -> set_pb2.SetServiceRemoveResponse:
        name = name_of(self._limits, request.name)
        members = self._members(request.members)
        write = write_of(self._limits, request.options)
        written, removed = await self._stores.get().remove(name, members, write)
        return set_pb2.SetServiceRemoveResponse(
            collection=state_pb(written.state), applied=written.applied, removed=removed
        )

    @rpc
    async def Contains(
        self, request: set_pb2.SetServiceContainsRequest, context: Ctx
    ) -> set_pb2.SetServiceContainsResponse:
        name = name_of(self._limits, request.name)
        members = self._members(request.members)
        state, found = await self._stores.get().contains(name, members)
        return set_pb2.SetServiceContainsResponse(collection=state_pb(state), contains=found)

    @rpc
    async def Members(
        self, request: set_pb2.SetServiceMembersRequest, context: Ctx
    ) -> set_pb2.SetServiceMembersResponse:
        name = name_of(self._limits, request.name)
        cursor = cursor_of("cursor", request.cursor)
        size = page_of(self._limits, "page_size", request.page_size)
        page = await self._stores.get().members(name, cursor, size)
        return set_pb2.SetServiceMembersResponse(
            collection=state_pb(page.state), members=page.members, next_cursor=next_cursor(page.cursor)
        )

    @rpc
    async def Length(
        self, request: set_pb2.SetServiceLengthRequest, context: Ctx
    ) -> set_pb2.SetServiceLengthResponse:
        state = await self._stores.get().length(name_of(self._limits, request.name))
        return set_pb2.SetServiceLengthResponse(collection=state_pb(state))

    @rpc
    async def Pop(self, request: set_pb2.SetServicePopRequest, context: Ctx) -> set_pb2.SetServicePopResponse:
        name = name_of(self._limits, request.name)
        count = count_of(self._limits, "count", request.count)
        write = write_of(self._limits, request.options)
        written, taken = await self._stores.get().pop(name, count, write)
        return set_pb2.SetServicePopResponse(
            collection=state_pb(written.state), applied=written.applied, members=taken
        )

    @rpc
    async def Delete(
        self, request: set_pb2.SetServiceDeleteRequest, context: Ctx
    ) -> set_pb2.SetServiceDeleteResponse:
        result = await self._stores.get().delete(name_of(self._limits, request.name), request.if_version)
        return set_pb2.SetServiceDeleteResponse(deleted=result.deleted, collection=state_pb(result.state))

    @rpc
    async def Touch(
        self, request: set_pb2.SetServiceTouchRequest, context: Ctx
    ) -> set_pb2.SetServiceTouchResponse:
        name = name_of(self._limits, request.name)
        state = await self._stores.get().touch(name, ttl_of(self._limits, "ttl", request.ttl))
        return set_pb2.SetServiceTouchResponse(collection=state_pb(state))

    def _members(self, members: Sequence[str]) -> list[str]:
        self._limits.batch("members", len(members))
        return [self._limits.key(f"members[{i}]", m) for i, m in enumerate(members)]
