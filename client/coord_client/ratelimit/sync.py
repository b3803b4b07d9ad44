"""The sync RateLimit client: :class:`RateLimitAPI`, reached as ``Client(...).ratelimit``, and
:class:`Limited`, what its ``limited`` returns. Requests and decisions come from :mod:`._codec`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from coord.ratelimit.v1 import ratelimit_pb2_grpc

from .._base import Transport
from .._call import SyncService
from . import _codec
from ._limited import LimitedBase, allowed, key_for
from .models import Decision, Limit

P = ParamSpec("P")
R = TypeVar("R")


class RateLimitAPI(SyncService):
    """Sync access to ``coord.ratelimit.v1.RateLimitService``; reached as ``Client(...).ratelimit``.

    Checks are never retried by the client (a retry could consume twice). Failures raise
    :class:`coord_client.CoordError` subclasses; bad arguments raise ValueError or TypeError before
    anything is sent.
    """

    def __init__(self, transport: Transport) -> None:
        stub = ratelimit_pb2_grpc.RateLimitServiceStub(transport.channel)
        super().__init__(transport, stub, _codec.SERVICE)

    def check(
        self,
        *limits: Limit,
        cost: int = 1,
        dry_run: bool = False,
        independent: bool = False,
        scope: str = "",
        timeout: float | None = None,
    ) -> Decision:
        """Decide ``limits`` in one atomic step. All-or-nothing over several keys needs a ``scope``."""
        return self._send(_codec.check(limits, cost, dry_run, independent, scope), timeout)

    def limit(
        self,
        key: str,
        rate: str | None = None,
        *,
        burst: int = 0,
        algorithm: str = "token_bucket",
        policy: str | None = None,
        on_backend_error: str = "closed",
        cost: int = 1,
        dry_run: bool = False,
        scope: str = "",
        timeout: float | None = None,
    ) -> Decision:
        """Check one key: ``client.limit("user:42", rate="100/m", burst=20)``."""
        one = Limit(key, rate, burst, algorithm, policy, on_backend_error)
        return self.check(one, cost=cost, dry_run=dry_run, scope=scope, timeout=timeout)

    def reset(self, key: str, *, scope: str = "", timeout: float | None = None) -> bool:
        """Clear ``key``'s state; True when it had any."""
        return self._send(_codec.reset(key, scope), timeout)

    def limited(self, key: str, rate: str | None = None, **options: Any) -> Limited:
        """A context manager and decorator that raises :class:`RateLimited` when denied.

        As a decorator, ``key`` may be a ``str.format`` template over the function's parameters.
        ``options`` are those of :meth:`limit`.
        """
        return Limited(self, key, rate, options)


class Limited(LimitedBase[RateLimitAPI]):
    """What :meth:`RateLimitAPI.limited` returns: ``with`` it, or decorate a function with it."""

    def _enforce(self, key: str) -> Decision:
        return allowed(self._api.limit(key, self._rate, **self._options))

    def __enter__(self) -> Decision:
        self.decision = self._enforce(self._key)
        return self.decision

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            self._enforce(key_for(self._key, signature, args, kwargs))
            return fn(*args, **kwargs)

        return wrapper


__all__ = ["Limited", "RateLimitAPI"]
