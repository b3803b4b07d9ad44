"""The RateLimit service: atomic multi-descriptor checks (token bucket, sliding window counter,
sliding log, fixed window), reset, and named policies reloaded on SIGHUP."""

from __future__ import annotations

import weakref

import grpc

from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

from ..config import Settings
from ..errors import StartupError
from ..redis import RedisBackend
from ..scripts import ScriptSet
from ..validation import Limits
from .denials import Denials
from .keys import RateLimitKeys
from .policies import PolicyError, PolicyRegistry
from .servicer import RateLimitServicer
from .store import RateLimitStore

SERVICE_NAME: str = ratelimit_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name

# The policy registries of the servers running in this process, for reload_policies() (SIGHUP).
_registries: weakref.WeakSet[PolicyRegistry] = weakref.WeakSet()


def add_to_server(server: grpc.aio.Server, redis: RedisBackend, settings: Settings) -> str:
    """Register RateLimitService on ``server``; returns its full name (for health and reflection).

    A policy file that cannot be loaded stops the start with a StartupError naming its line.
    """
    try:
        policies = PolicyRegistry(settings.ratelimit_policies)
    except PolicyError as exc:
        raise StartupError(f"rate limit policies: {exc}") from None
    _registries.add(policies)
    if settings.ratelimit_timeout <= 0:
        raise StartupError("rate limit timeout: COORD_RATELIMIT_TIMEOUT must be longer than zero")
    timeout = min(settings.ratelimit_timeout, settings.redis_timeout)
    denials = Denials() if settings.ratelimit_deny_cache else None
    store = RateLimitStore(redis, ScriptSet(__name__), RateLimitKeys(settings.tenant), timeout, denials)
    servicer = RateLimitServicer(store, policies, Limits.from_settings(settings))
    ratelimit_pb2_grpc.add_RateLimitServiceServicer_to_server(servicer, server)
    return SERVICE_NAME


def reload_policies() -> None:
    """Reload every running server's policy file (the SIGHUP handler); a bad file keeps the old ones."""
    for registry in list(_registries):
        registry.reload()
