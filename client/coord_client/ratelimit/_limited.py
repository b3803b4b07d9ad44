"""What :class:`~.sync.Limited` and :class:`~.aio.AsyncLimited` share: their arguments, the key a
decorated call checks, and the rule that a denial raises :class:`RateLimited`."""

from __future__ import annotations

import inspect
from typing import Any, Generic, TypeVar

from .models import Decision, RateLimited

ApiT = TypeVar("ApiT")


class LimitedBase(Generic[ApiT]):
    """``limited(key, rate, **options)`` of either API: what to check, and the last decision."""

    def __init__(self, api: ApiT, key: str, rate: str | None, options: dict[str, Any]) -> None:
        self._api, self._key, self._rate, self._options = api, key, rate, options
        self.decision: Decision | None = None


def allowed(decision: Decision) -> Decision:
    """``decision`` when it allows; :class:`RateLimited` when it denies."""
    if not decision:
        raise RateLimited(decision)
    return decision


def key_for(template: str, signature: inspect.Signature, args: Any, kwargs: Any) -> str:
    """``template`` formatted with the bound arguments of a call (``"user:{user_id}"``).

    ``signature`` is the decorated function's, taken once at decoration: it costs more than a check.
    """
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return template.format(**bound.arguments)
