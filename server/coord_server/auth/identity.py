"""Who is calling: an :class:`Identity` (name, tenant, permissions, limits), and the permissions there are.

A permission is ``service.Method`` with the service's short name (``cache.Get``, ``events.Subscribe``).
An identity's ``allow`` holds entries of three kinds: ``"*"`` (every method of every service), a short
service name (``"ratelimit"``: every method of that service) or one permission (``"lock.Acquire"``).
The services and methods are read from the protos' descriptors, so an entry naming a method that
does not exist is refused where it is written (the auth file, a JWT claim), not silently ignored.

``"*"`` grants every method of the services a tenant's data lives in, but not those of the
:data:`PRIVILEGED` services: ``admin`` (AdminService.GetStats) answers about every tenant's keys and
the server's settings, so an identity gets it only by naming it (``"admin"`` or ``"admin.GetStats"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf.descriptor import FileDescriptor

from coord.admin.v1 import admin_pb2
from coord.cache.v1 import cache_pb2
from coord.collections.v1 import list_pb2, map_pb2, set_pb2, sorted_set_pb2
from coord.election.v1 import election_pb2
from coord.events.v1 import events_pb2
from coord.lock.v1 import lock_pb2
from coord.ratelimit.v1 import ratelimit_pb2
from coord.session.v1 import session_pb2

# The same rule as COORD_TENANT (config.py): tenants are part of every Redis key (coord:<tenant>:...),
# so no character that could break out of it ({ } : *, whitespace) is allowed.
_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Names appear in logs: printable, no whitespace, nothing a log parser could take for structure.
_NAME = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")

ALL = "*"

_FILES: dict[str, FileDescriptor] = {
    "cache": cache_pb2.DESCRIPTOR,
    "lock": lock_pb2.DESCRIPTOR,
    "ratelimit": ratelimit_pb2.DESCRIPTOR,
    "session": session_pb2.DESCRIPTOR,
    "events": events_pb2.DESCRIPTOR,
    "map": map_pb2.DESCRIPTOR,
    "list": list_pb2.DESCRIPTOR,
    "set": set_pb2.DESCRIPTOR,
    "sorted_set": sorted_set_pb2.DESCRIPTOR,
    "election": election_pb2.DESCRIPTOR,
    "envoy": rls_pb2.DESCRIPTOR,
    "admin": admin_pb2.DESCRIPTOR,
}
#: Services ``"*"`` does not grant: their answers are not one tenant's (see the module docstring).
PRIVILEGED = frozenset({"admin"})


def _catalogue() -> tuple[Mapping[str, frozenset[str]], Mapping[str, str]]:
    methods: dict[str, frozenset[str]] = {}
    short_of: dict[str, str] = {}
    for short, file in _FILES.items():
        names: set[str] = set()
        for service in file.services_by_name.values():
            short_of[service.full_name] = short
            names.update(method.name for method in service.methods)
        methods[short] = frozenset(names)
    return MappingProxyType(methods), MappingProxyType(short_of)


#: Short service name -> its method names (``"cache" -> {"Get", "Set", ...}``).
METHODS, _SHORT_OF = _catalogue()


def is_tenant(name: object) -> bool:
    """Whether ``name`` is a valid tenant: 1-64 of ``A-Z a-z 0-9 _ . -``."""
    return isinstance(name, str) and _TENANT.fullmatch(name) is not None


def is_name(name: object) -> bool:
    """Whether ``name`` is a valid identity name: 1-128 of ``A-Z a-z 0-9 _ . : @ / -``."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def allow_problem(entry: object) -> str | None:
    """Why ``entry`` is not a valid allow entry, or None when it is."""
    if not isinstance(entry, str):
        return f"allow entries are strings, not {entry!r}"
    if entry == ALL or entry in METHODS:
        return None
    service, dot, method = entry.partition(".")
    if not dot:
        return f"unknown service {entry!r} (known: {', '.join(METHODS)}, or '*')"
    if service not in METHODS:
        return f"{entry!r}: unknown service {service!r} (known: {', '.join(METHODS)})"
    if method not in METHODS[service]:
        return f"{entry!r}: {service} has no method {method!r} (it has {', '.join(sorted(METHODS[service]))})"
    return None


def permission_of(method: str) -> tuple[str, str]:
    """``(service, permission)`` for a full gRPC method path.

    ``"/coord.cache.v1.CacheService/Get"`` -> ``("cache", "cache.Get")``. A method of a service outside
    the catalogue gets its full path as both, which only ``"*"`` permits.
    """
    full_service, _, name = method.lstrip("/").partition("/")
    short = _SHORT_OF.get(full_service)
    if short is None:
        return method, method
    return short, f"{short}.{name}"


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's limits on one server; None means no limit.

    ``calls_per_second`` and ``burst`` define a GCRA (see limits.py): up to ``burst`` calls at once,
    then one every ``1 / calls_per_second`` seconds. ``max_streams`` bounds the streaming calls open
    at once.
    """

    calls_per_second: float | None = None
    burst: int | None = None
    max_streams: int | None = None

    @property
    def interval(self) -> float:
        """Seconds between two calls at the sustained rate (the GCRA emission interval)."""
        return 1.0 / self.calls_per_second if self.calls_per_second else 0.0

    @property
    def tolerance(self) -> float:
        """How far ahead of now the GCRA may run: room for ``burst`` calls at once."""
        return (self.effective_burst - 1) * self.interval

    @property
    def effective_burst(self) -> int:
        """``burst``, or one second's worth of calls (at least 1) when it is not given."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.calls_per_second or 1))


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller: ``name`` for logs (never a secret), the tenant all its keys live under, the
    allow entries it was granted, and its tenant's limits."""

    name: str
    tenant: str
    allow: frozenset[str]
    limits: Limits = NO_LIMITS

    def permits(self, service: str, permission: str) -> bool:
        """Whether this identity may call ``permission`` (``"cache.Get"``) of ``service`` (``"cache"``)."""
        allow = self.allow
        if ALL in allow and service not in PRIVILEGED:
            return True
        return service in allow or permission in allow
