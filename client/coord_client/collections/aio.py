# ruff: noqa: ASYNC109  (``timeout`` is the gRPC deadline of a call, passed on to grpc.aio)
"""The asyncio collection handles: :class:`AsyncMap`, :class:`AsyncList`, :class:`AsyncSet` and
:class:`AsyncSortedSet`, reached as ``AsyncClient(...).map(name)`` and so on.

Every method is the sync handle's (:mod:`.sync`), taken over with
:func:`~coord_client._call.awaiting`: written once, it returns a coroutine here (arguments are
checked when the method is called). Paged reads work the same way: their one line returns
``self._collect(...)``, which is a coroutine on these handles.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from coord.collections.v1 import list_pb2_grpc, map_pb2_grpc, set_pb2_grpc, sorted_set_pb2_grpc

from .._base import AsyncTransport
from .._call import AsyncService, awaiting
from . import _codec, _lists, _maps, _sets, _sorted_sets
from .sync import Handle, List, Map, Set, SortedSet

R = TypeVar("R")


class AsyncHandle(AsyncService):
    """What every asyncio handle has: the methods of :class:`~.sync.Handle`, as coroutines."""

    _kind: ClassVar[_codec.Kind]

    def __init__(self, transport: AsyncTransport, stub: Any, name: str) -> None:
        super().__init__(transport, stub, self._kind.service)
        self.name = _codec.name(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    async def _collect(self, paged: _codec.Paged[Any, R], timeout: float | None) -> R:
        while (call := paged.call()) is not None:
            paged.take(await self._send(call, timeout))
        return paged.result()

    length = awaiting(Handle.length)
    state = awaiting(Handle.state)
    delete = awaiting(Handle.delete)
    touch = awaiting(Handle.touch)


class AsyncMap(AsyncHandle):
    """:class:`~.sync.Map` for asyncio."""

    _kind = _maps.KIND

    set = awaiting(Map.set)
    get = awaiting(Map.get)
    get_many = awaiting(Map.get_many)
    get_all = awaiting(Map.get_all)
    remove = awaiting(Map.remove)
    increment = awaiting(Map.increment)


class AsyncList(AsyncHandle):
    """:class:`~.sync.List` for asyncio."""

    _kind = _lists.KIND

    push = awaiting(List.push)
    pop = awaiting(List.pop)
    range = awaiting(List.range)
    remove = awaiting(List.remove)
    trim = awaiting(List.trim)


class AsyncSet(AsyncHandle):
    """:class:`~.sync.Set` for asyncio."""

    _kind = _sets.KIND

    add = awaiting(Set.add)
    remove = awaiting(Set.remove)
    contains = awaiting(Set.contains)
    contains_many = awaiting(Set.contains_many)
    members = awaiting(Set.members)
    pop = awaiting(Set.pop)


class AsyncSortedSet(AsyncHandle):
    """:class:`~.sync.SortedSet` for asyncio (the same default orders)."""

    _kind = _sorted_sets.KIND

    put = awaiting(SortedSet.put)
    increment = awaiting(SortedSet.increment)
    remove = awaiting(SortedSet.remove)
    score = awaiting(SortedSet.score)
    score_many = awaiting(SortedSet.score_many)
    rank = awaiting(SortedSet.rank)
    rank_many = awaiting(SortedSet.rank_many)
    top = awaiting(SortedSet.top)
    around = awaiting(SortedSet.around)
    range_by_rank = awaiting(SortedSet.range_by_rank)
    range_by_score = awaiting(SortedSet.range_by_score)


class AsyncCollections:
    """Makes the handles of one asyncio client: one stub per service, shared by every handle."""

    def __init__(self, transport: AsyncTransport) -> None:
        channel = transport.channel
        self._t = transport
        self._map = map_pb2_grpc.MapServiceStub(channel)
        self._list = list_pb2_grpc.ListServiceStub(channel)
        self._set = set_pb2_grpc.SetServiceStub(channel)
        self._sorted_set = sorted_set_pb2_grpc.SortedSetServiceStub(channel)

    def map(self, name: str) -> AsyncMap:
        return AsyncMap(self._t, self._map, name)

    def list(self, name: str) -> AsyncList:
        return AsyncList(self._t, self._list, name)

    def set(self, name: str) -> AsyncSet:
        return AsyncSet(self._t, self._set, name)

    def sorted_set(self, name: str) -> AsyncSortedSet:
        return AsyncSortedSet(self._t, self._sorted_set, name)


__all__ = ["AsyncCollections", "AsyncHandle", "AsyncList", "AsyncMap", "AsyncSet", "AsyncSortedSet"]
