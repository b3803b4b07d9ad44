"""SetService's calls as data, shared by :class:`~.sync.Set` and :class:`~.aio.AsyncSet`."""

from __future__ import annotations

from collections.abc import Iterable

from coord.collections.v1 import set_pb2

from .._call import Call
from . import _codec as c
from .models import Added, Popped, Removed

SERVICE = "coord.collections.v1.SetService"
KIND = c.Kind(
    SERVICE, set_pb2.SetServiceLengthRequest, set_pb2.SetServiceDeleteRequest, set_pb2.SetServiceTouchRequest
)


def add(name: str, members: tuple[str, ...], options: c.Options) -> Call[Added]:
    request = set_pb2.SetServiceAddRequest(
        name=c.name(name),
        members=c.required(c.texts(members, "members"), "add", "member"),
        options=options,
    )
    return Call("Add", request, lambda r: Added(**c.written(r), added=r.added))


def remove(name: str, members: tuple[str, ...], options: c.Options) -> Call[Removed]:
    request = set_pb2.SetServiceRemoveRequest(
        name=c.name(name),
        members=c.required(c.texts(members, "members"), "remove", "member"),
        options=options,
    )
    return Call("Remove", request, lambda r: Removed(**c.written(r), removed=r.removed))


def contains(name: str, member: str) -> Call[bool]:
    request = set_pb2.SetServiceContainsRequest(name=c.name(name), members=[c.text(member, "member")])
    return Call("Contains", request, lambda r: bool(r.contains[0]))


def contains_many(name: str, members: Iterable[str]) -> Call[dict[str, bool]]:
    request = set_pb2.SetServiceContainsRequest(name=c.name(name), members=c.texts(members, "members"))
    if not request.members:
        return Call.answered({})
    asked = list(request.members)
    return Call("Contains", request, lambda r: dict(zip(asked, r.contains, strict=True)))


def members(name: str, page_size: int) -> c.Paged[str, set[str]]:
    checked, size = c.name(name), c.integer(page_size, "page_size", low=0)

    def page(cursor: str, _: int | None) -> Call[c.Page[str]]:
        request = set_pb2.SetServiceMembersRequest(name=checked, cursor=cursor, page_size=size)
        return Call("Members", request, _page)

    return c.Paged(page, "", set)


def _page(r: set_pb2.SetServiceMembersResponse) -> c.Page[str]:
    return c.Page(r.collection.version, list(r.members), r.next_cursor or None)


def pop(name: str, count: int, options: c.Options) -> Call[Popped[str]]:
    request = set_pb2.SetServicePopRequest(
        name=c.name(name),
        count=c.integer(count, "count", low=1),
        options=options,
    )
    return Call("Pop", request, lambda r: Popped(**c.written(r), values=list(r.members)))
