"""The deadline of the RPC being served: the one place it is kept, read, narrowed and cleared.

The RPC boundary (``_grpc.py``) records the caller's deadline with :func:`set` and restores the
previous value with :func:`reset`; every Redis call waits at most until :func:`current` (see
``backend.py``). The value lives in a context variable, so it follows the request through awaits and
into tasks it creates. That last part is the trap: a task that outlives the RPC (a feed, a listener, a
cleanup) must not be cancelled by the deadline of whichever RPC happened to start it. Such work runs
under :func:`detached` or in a task created with ``context=detached_context()``.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from typing import TypeAlias

__all__ = ["Token", "current", "detached", "detached_context", "narrowed", "reset", "set"]

# Absolute deadline (time.monotonic()) of the RPC being served, or None when it has none. Private:
# everything reads and writes it through the functions below.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("rpc_deadline", default=None)

Token: TypeAlias = contextvars.Token[float | None]


# The three calls of the RPC boundary's hot path are the context variable's own bound methods: no
# extra Python frame per RPC.
#: ``current() -> float | None``: the absolute ``time.monotonic()`` deadline of the RPC being served,
#: or None when it has none.
current = _deadline.get
#: ``set(at: float | None) -> Token``: make ``at`` (absolute ``time.monotonic()``, or None) the
#: deadline; :func:`reset` undoes it. Named for its call sites (``deadline.set``); the builtin ``set``
#: is not used in this module.
set = _deadline.set
#: ``reset(token: Token) -> None``: restore the deadline ``set`` replaced (in the context that set it).
reset = _deadline.reset


@contextlib.contextmanager
def narrowed(seconds: float | None) -> Iterator[float | None]:
    """Within the block, the deadline is at most ``seconds`` from now (an earlier one stays).

    ``None`` leaves the deadline as it is, so a caller with an optional timeout needs no branch.
    Yields the deadline in force inside the block.
    """
    outer = _deadline.get()
    if seconds is None:
        yield outer
        return
    at = time.monotonic() + seconds
    if outer is not None and outer < at:
        at = outer
    token = _deadline.set(at)
    try:
        yield at
    finally:
        _deadline.reset(token)


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """Within the block there is no RPC deadline: for work that outlives the RPC that started it."""
    token = _deadline.set(None)
    try:
        yield
    finally:
        _deadline.reset(token)


def detached_context() -> contextvars.Context:
    """A copy of the current context without the RPC deadline, for ``create_task(..., context=...)``.

    Everything else the context holds is kept; only the deadline, which belongs to the RPC and not to
    the background task, is cleared.
    """
    context = contextvars.copy_context()
    context.run(_deadline.set, None)
    return context
