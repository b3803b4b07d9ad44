"""ListService's calls as data, shared by :class:`~.sync.List` and :class:`~.aio.AsyncList`."""

from __future__ import annotations

from coord.collections.v1 import list_pb2

from .._call import Call
from .._convert import Seconds, seconds, to_duration
from . import _codec as c
from .models import Popped, Pushed, Removed, Value

SERVICE = "coord.collections.v1.ListService"
KIND = c.Kind(
    SERVICE,
    list_pb2.ListServiceLengthRequest,
    list_pb2.ListServiceDeleteRequest,
    list_pb2.ListServiceTouchRequest,
)


def _end(front: bool) -> list_pb2.End.ValueType:
    if not isinstance(front, bool):
        raise TypeError(f"front must be a bool, not {type(front).__name__}")
    return list_pb2.END_FRONT if front else list_pb2.END_BACK


def push(
    name: str,
    values: tuple[Value, ...],
    front: bool,
    max_length: int | None,
    options: c.Options,
) -> Call[Pushed]:
    checked = [c.value_bytes(v, f"values[{i}]") for i, v in enumerate(values)]
    request = list_pb2.ListServicePushRequest(
        name=c.name(name),
        values=c.required(checked, "push", "value"),
        end=_end(front),
        max_length=0 if max_length is None else c.integer(max_length, "max_length", low=1),
        options=options,
    )
    return Call("Push", request, lambda r: Pushed(**c.written(r), trimmed=r.trimmed))


def wait_seconds(wait: Seconds | None) -> float | None:
    """A pop's wait in seconds; None (or zero) for no wait."""
    return seconds(wait, "wait") or None


def pop(
    name: str,
    count: int,
    front: bool,
    wait: float | None,
    options: c.Options,
) -> Call[Popped[bytes]]:
    if wait is not None and options is not None and options.if_version:
        raise ValueError("pop: if_version cannot be combined with a wait")
    request = list_pb2.ListServicePopRequest(
        name=c.name(name),
        end=_end(front),
        count=c.integer(count, "count", low=1),
        wait=to_duration(wait),
        options=options,
    )
    return Call("Pop", request, lambda r: Popped(**c.written(r), values=list(r.values)))


def range_of(name: str, start: int, stop: int) -> c.Paged[bytes, list[bytes]]:
    checked, last = c.name(name), c.integer(stop, "stop")

    def page(first: int, _: int | None) -> Call[c.Page[bytes]]:
        request = list_pb2.ListServiceRangeRequest(name=checked, start=first, stop=last)
        return Call("Range", request, _page)

    return c.Paged(page, c.integer(start, "start"), list)


def _page(r: list_pb2.ListServiceRangeResponse) -> c.Page[bytes]:
    return c.Page(r.collection.version, list(r.values), r.next_start if r.has_more else None)


def remove(name: str, value: Value, count: int, options: c.Options) -> Call[Removed]:
    request = list_pb2.ListServiceRemoveRequest(
        name=c.name(name),
        value=c.value_bytes(value),
        count=c.integer(count, "count"),
        options=options,
    )
    return Call("Remove", request, lambda r: Removed(**c.written(r), removed=r.removed))


def trim(name: str, start: int, stop: int, options: c.Options) -> Call[Removed]:
    request = list_pb2.ListServiceTrimRequest(
        name=c.name(name),
        start=c.integer(start, "start"),
        stop=c.integer(stop, "stop"),
        options=options,
    )
    return Call("Trim", request, lambda r: Removed(**c.written(r), removed=r.removed))


def deadline(wait: float | None, timeout: float | None, default: float) -> float | None:
    """A pop's deadline: the caller's ``timeout``; without one, a wait gets the client's default
    timeout on top of it, so that a default meant for quick calls does not cut a long wait short."""
    if timeout is not None or wait is None:
        return timeout
    return wait + default
