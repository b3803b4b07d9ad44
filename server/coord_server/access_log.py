"""The access log (``COORD_ACCESS_LOG=1``): one INFO line per RPC, on the ``coord_server.access`` logger.

Each line says the method, the status code, how long the call took, the caller's tenant and peer:
``/coord.cache.v1.CacheService/Get OK 0.4ms tenant=default peer=ipv4:127.0.0.1:51234``,
and as fields of their own in the JSON form (``COORD_LOG_FORMAT=json``). Off by default: a line per
call costs more than the call's own Python on a busy server. When it is off nothing is wrapped.
"""

from __future__ import annotations

import inspect
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from . import tenancy
from .metrics.grpc_server import code_name

log = logging.getLogger("coord_server.access")

_ON: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()


def attach(server: object, default_tenant: str) -> None:
    """Log the RPCs of the services registered on ``server`` from now on; calls that no identity
    binds to a tenant are the default tenant's."""
    _ON[server] = default_tenant


def enabled(server: object) -> str | None:
    """The default tenant of ``server``'s access log, or None when it logs none."""
    return _ON.get(server)


def _write(path: str, context: Any, code: str, started: float, default_tenant: str) -> None:
    took = (time.perf_counter() - started) * 1000
    tenant = tenancy.bound() or default_tenant
    try:
        peer = context.peer()
    except Exception:  # a context that is already gone
        peer = "-"
    log.info(
        "%s %s %.1fms tenant=%s peer=%s",
        path,
        code,
        took,
        tenant,
        peer,
        extra={"method": path, "code": code, "duration_ms": round(took, 3), "tenant": tenant, "peer": peer},
    )


def wrap(behaviour: Callable[..., Any], path: str, default_tenant: str) -> Callable[..., Any]:
    """``behaviour`` (an async generator or coroutine function) with a line written when it ends."""
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async for item in behaviour(request, context):
                    yield item
            except BaseException as error:
                _write(path, context, code_name(context, error), started, default_tenant)
                raise
            _write(path, context, "OK", started, default_tenant)

        return stream
    if inspect.iscoroutinefunction(behaviour):

        async def call(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                response = await behaviour(request, context)
            except BaseException as error:
                _write(path, context, code_name(context, error), started, default_tenant)
                raise
            _write(path, context, "OK", started, default_tenant)
            return response

        return call
    return behaviour
