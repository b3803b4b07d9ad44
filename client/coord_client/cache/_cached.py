"""What ``get_or_set`` and the ``cached`` decorators of both clients share: how a miss is filled (under
a fill lease or not), when a stale value is served or a hit refreshed early, and how a call of the
function names its entry."""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from random import random as uniform
from typing import Any, Generic, ParamSpec, cast

from .._convert import Seconds, seconds
from .models import TTL, Entry, FillLease, Serializer

P = ParamSpec("P")

KeySpec = str | Callable[..., str] | None

# How long a caller that took a key's fill lease has to store its value, unless told otherwise.
DEFAULT_LEASE_TTL = 10.0


@dataclass(frozen=True)
class EarlyExpiry:
    """Probabilistic early expiry for ``get_or_set`` and ``cached``: XFetch, from Vattani, Chierichetti
    and Lowenstein, "Optimal Probabilistic Cache Stampede Prevention" (VLDB 2015).

    A hit is refreshed before it expires when ``now - compute_time * beta * ln(U) >= expire_time``,
    with U drawn uniformly from (0, 1]: the nearer the expiry and the longer the value took to
    compute, the likelier. Over many callers of a hot key, about one refreshes it shortly before it
    expires, and nobody waits for a miss. ``beta`` above 1 refreshes earlier, below 1 later. The
    fill's duration is measured and stored with the value (``Entry.compute_time``): an entry without
    one is never refreshed early. An early refresh stores its value only if nobody wrote the key
    since it was read (compare-and-set on its version).

    ``random`` (U's source: ``random.random``) and ``clock`` (Unix seconds: ``time.time``, which
    must agree with the Redis server's clock) may be replaced, for example by a seeded
    ``random.Random(7).random``.
    """

    beta: float = 1.0
    random: Callable[[], float] = uniform
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        beta = self.beta
        number = isinstance(beta, int | float) and not isinstance(beta, bool)
        if not number or not math.isfinite(beta) or beta <= 0:
            raise ValueError(f"early_expiry's beta must be a positive, finite number (got {beta!r})")

    def due(self, entry: Entry) -> bool:
        """Whether this read of ``entry`` (a hit) should refresh it now; one draw of U per call."""
        if not entry.found or not entry.compute_time or entry.expire_time is None:
            return False
        draw = 1.0 - self.random()  # in (0, 1]: its logarithm is finite
        ahead = -entry.compute_time * self.beta * math.log(draw)
        return self.clock() + ahead >= entry.expire_time.timestamp()


EarlyExpiryLike = bool | float | EarlyExpiry | None


def early_expiry(value: EarlyExpiryLike) -> EarlyExpiry | None:
    """``early_expiry=`` as given: None or False (off), True (beta 1), a beta, or an EarlyExpiry."""
    if value is None or value is False:
        return None
    if value is True:
        return EarlyExpiry()
    if isinstance(value, EarlyExpiry):
        return value
    if isinstance(value, int | float):
        return EarlyExpiry(beta=value)
    raise TypeError(f"early_expiry must be a bool, a beta or an EarlyExpiry, not {type(value).__name__}")


@dataclass(frozen=True)
class Filling:
    """How ``get_or_set`` fills a miss: under the key's fill lease (``lease``) held for ``lease_ttl``,
    a caller that misses while another fills waiting up to ``wait`` (None: ``lease_ttl``); or, without
    ``lease``, by a plain read and an if-absent write. With ``stale_grace`` (leases only) a value is
    kept that long past its TTL and served stale while one caller refreshes it; with
    ``early_expiry`` a hit may be refreshed before it expires (:class:`EarlyExpiry`)."""

    lease: bool = True
    lease_ttl: Seconds = DEFAULT_LEASE_TTL
    wait: Seconds | None = None
    stale_grace: TTL = None
    early_expiry: EarlyExpiryLike = None

    def __post_init__(self) -> None:
        self.wait_seconds()  # bad values fail where they are given (ValueError, TypeError)
        if seconds(self.stale_grace, "stale_grace") and not self.lease:
            raise ValueError("stale_grace needs lease=True: stale values are served under fill leases")
        self.early()

    @property
    def serve_stale(self) -> bool:
        """Whether stale values are asked for (a stale grace was given)."""
        return bool(seconds(self.stale_grace, "stale_grace"))

    def wait_seconds(self) -> float:
        """The wait in seconds: ``wait``, or the lease TTL when None."""
        lease_ttl = seconds(self.lease_ttl, "lease_ttl", allow_zero=False) or DEFAULT_LEASE_TTL
        chosen = seconds(self.wait, "wait")
        return lease_ttl if chosen is None else chosen

    def early(self) -> EarlyExpiry | None:
        """The early expiry in force, if any."""
        return early_expiry(self.early_expiry)

    def step(self, got: FillLease) -> Step:
        """What ``get_or_set`` does with what it read (``got``; without ``lease``, a plain read's
        entry, as a FillLease without a lease)."""
        entry = got.entry
        if entry.found and not got.leased:
            early = self.early()
            if got.stale or early is None or not early.due(entry):
                return Step(entry.value)
            return Step(if_version=entry.version)  # refreshed early, unless written meanwhile
        if not self.lease:
            return Step(if_absent=True)
        # A miss, or a stale value this caller refreshes: stored under its lease, if it has one.
        return Step(lease_token=got.lease_token or None, store=got.leased)

    def compute_time(self, started: float) -> float | None:
        """How long the fill started at ``started`` (``time.perf_counter()``) took, stored with its
        value when early expiry is on (XFetch weighs refreshes by it); None otherwise, and for a fill
        under a millisecond (the server keeps milliseconds: such a value is never refreshed early)."""
        took = time.perf_counter() - started
        return took if self.early() is not None and took >= 0.001 else None


@dataclass(frozen=True)
class Step:
    """What ``get_or_set`` does next: return ``value`` (not None), or run the fill and, with
    ``store``, write its value under ``lease_token``, ``if_version`` or ``if_absent``."""

    value: bytes | None = None
    lease_token: str | None = None
    if_version: int | None = None
    if_absent: bool = False
    store: bool = True


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
