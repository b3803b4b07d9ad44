"""What ``get_or_set`` and the ``cached`` decorators of both clients share: how a miss is filled (under
a fill lease or not), and how a call of the function names its entry."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, cast

from .._convert import Seconds, seconds
from .models import TTL, Serializer

P = ParamSpec("P")

KeySpec = str | Callable[..., str] | None

# How long a caller that took a key's fill lease has to store its value, unless told otherwise.
DEFAULT_LEASE_TTL = 10.0


@dataclass(frozen=True)
class Filling:
    """How ``get_or_set`` fills a miss: under the key's fill lease (``lease``) held for ``lease_ttl``,
    a caller that misses while another fills waiting up to ``wait`` (None: ``lease_ttl``); or, without
    ``lease``, by a plain read and an if-absent write."""

    lease: bool = True
    lease_ttl: Seconds = DEFAULT_LEASE_TTL
    wait: Seconds | None = None

    def __post_init__(self) -> None:
        self.wait_seconds()  # bad values fail where they are given (ValueError, TypeError)

    def wait_seconds(self) -> float:
        """The wait in seconds: ``wait``, or the lease TTL when None."""
        lease_ttl = seconds(self.lease_ttl, "lease_ttl", allow_zero=False) or DEFAULT_LEASE_TTL
        chosen = seconds(self.wait, "wait")
        return lease_ttl if chosen is None else chosen


def key_builder(fn: Callable[..., Any], key: KeySpec) -> Callable[..., str]:
    """How ``cached`` names the entry for one call of ``fn``.

    ``key`` may be a callable taking fn's arguments, a ``str.format`` template over fn's parameters
    (``"user:{user_id}"``), or None: the function's qualified name plus a digest of the arguments'
    ``repr`` (so arguments need a stable repr; pass ``key`` when they do not).
    """
    if callable(key):
        return key
    signature = inspect.signature(fn)

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound

    if isinstance(key, str):
        template = key

        def from_template(*args: Any, **kwargs: Any) -> str:
            bound = bind(args, kwargs)
            return template.format(*bound.args, **bound.arguments)

        return from_template

    prefix = f"cached:{fn.__module__}.{fn.__qualname__}"

    def from_arguments(*args: Any, **kwargs: Any) -> str:
        digest = hashlib.sha256(repr(tuple(bind(args, kwargs).arguments.items())).encode()).hexdigest()
        return f"{prefix}:{digest[:32]}"

    return from_arguments


class CachedBase(Generic[P]):
    """A function wrapped by ``cached``: its TTL, serializer, key naming and filling (sync or async
    alike)."""

    def __init__(
        self, fn: Callable[P, Any], ttl: TTL, key: KeySpec, serializer: Serializer, filling: Filling
    ) -> None:
        self._ttl, self._serializer, self._filling = ttl, serializer, filling
        self._key = key_builder(fn, key)
        # The subclasses are the callables (sync or async): they carry fn's name and docstring.
        functools.update_wrapper(cast(Callable[..., Any], self), fn)

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key a call with these arguments uses."""
        return self._key(*args, **kwargs)
