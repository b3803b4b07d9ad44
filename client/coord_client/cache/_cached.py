"""What the ``cached`` decorators of both clients share: how a call of the function names its entry."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, cast

from .models import TTL, Serializer

P = ParamSpec("P")

KeySpec = str | Callable[..., str] | None


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
    """A function wrapped by ``cached``: its TTL, serializer and key naming (sync or async alike)."""

    def __init__(self, fn: Callable[P, Any], ttl: TTL, key: KeySpec, serializer: Serializer) -> None:
        self._ttl, self._serializer = ttl, serializer
        self._key = key_builder(fn, key)
        # The subclasses are the callables (sync or async): they carry fn's name and docstring.
        functools.update_wrapper(cast(Callable[..., Any], self), fn)

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key a call with these arguments uses."""
        return self._key(*args, **kwargs)
