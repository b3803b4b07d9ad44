"""MapService's calls as data: each function checks its arguments, builds the request and says how
the response reads. Shared by :class:`~.sync.Map` and :class:`~.aio.AsyncMap`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from coord.collections.v1 import map_pb2

from .._call import Call
from . import _codec as c
from .models import Added, Incremented, Removed, Value

SERVICE = "coord.collections.v1.MapService"
KIND = c.Kind(
    SERVICE, map_pb2.MapServiceLengthRequest, map_pb2.MapServiceDeleteRequest, map_pb2.MapServiceTouchRequest
)


def set_fields(
    name: str,
    fields: Mapping[str, Value] | None,
    more: Mapping[str, Value],
    options: c.Options,
) -> Call[Added]:
    merged: dict[str, Value] = {}
    if fields is not None:
        if not isinstance(fields, Mapping):
            raise TypeError(f"fields must be a mapping of field to value, not {type(fields).__name__}")
        merged.update(fields)
    merged.update(more)
    pairs = [
        map_pb2.MapField(field=c.text(f, "field"), value=c.value_bytes(v, f"value of {f!r}"))
        for f, v in merged.items()
    ]
    request = map_pb2.MapServiceSetRequest(
        name=c.name(name),
        fields=c.required(pairs, "set", "field"),
        options=options,
    )
    return Call("Set", request, lambda r: Added(**c.written(r), added=r.added))


def get(name: str, field: str) -> Call[bytes | None]:
    request = map_pb2.MapServiceGetRequest(name=c.name(name), fields=[c.text(field, "field")])
    return Call("Get", request, lambda r: r.values[0].value if r.values[0].found else None)


def get_many(name: str, fields: Iterable[str]) -> Call[dict[str, bytes]]:
    request = map_pb2.MapServiceGetRequest(name=c.name(name), fields=c.texts(fields, "fields"))
    if not request.fields:
        return Call.answered({})
    return Call("Get", request, lambda r: {v.field: v.value for v in r.values if v.found})


def get_all(name: str, page_size: int) -> c.Paged[tuple[str, bytes], dict[str, bytes]]:
    checked, size = c.name(name), c.integer(page_size, "page_size", low=0)

    def page(cursor: str, _: int | None) -> Call[c.Page[tuple[str, bytes]]]:
        request = map_pb2.MapServiceGetAllRequest(name=checked, cursor=cursor, page_size=size)
        return Call("GetAll", request, _page)

    return c.Paged(page, "", dict)


def _page(r: map_pb2.MapServiceGetAllResponse) -> c.Page[tuple[str, bytes]]:
    items = [(f.field, f.value) for f in r.fields]
    return c.Page(r.collection.version, items, r.next_cursor or None)


def remove(name: str, fields: tuple[str, ...], options: c.Options) -> Call[Removed]:
    request = map_pb2.MapServiceRemoveRequest(
        name=c.name(name),
        fields=c.required(c.texts(fields, "fields"), "remove", "field"),
        options=options,
    )
    return Call("Remove", request, lambda r: Removed(**c.written(r), removed=r.removed))


def increment(name: str, field: str, delta: float, options: c.Options) -> Call[Incremented[Any]]:
    request = map_pb2.MapServiceIncrementRequest(
        name=c.name(name), field=c.text(field, "field"), options=options
    )
    if isinstance(delta, int) and not isinstance(delta, bool):
        request.delta = c.integer(delta, "delta")
    else:
        request.float_delta = c.number(delta, "delta")
    return Call("Increment", request, _incremented)


def _incremented(r: map_pb2.MapServiceIncrementResponse) -> Incremented[Any]:
    which = r.WhichOneof("value")
    value = r.int_value if which == "int_value" else r.float_value if which == "float_value" else None
    return Incremented(**c.written(r), value=value)
