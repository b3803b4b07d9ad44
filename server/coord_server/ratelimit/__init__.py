"""The RateLimit service: atomic multi-descriptor checks (token bucket, sliding window counter,
sliding log, fixed window), reset, and named policies reloaded on SIGHUP."""

from __future__ import annotations

import grpc

from coord.ratelimit.v1 import ratelimit_pb2, ratelimit_pb2_grpc

from ..config import ConfigError, Settings
from ..redis import RedisBackend, ScriptSet
from ..validation import Limits
from .denials import Denials
from .keys import RateLimitKeys
from .policies import PolicyError, PolicyRegistry
from .servicer import RateLimitServicer
from .store import RateLimitStore

SERVICE_NAME: str = ratelimit_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name


def load_policies(settings: Settings) -> PolicyRegistry:
    """The named policies of ``settings.ratelimit_policies`` (none for an empty path).

    The app owns the registry and reloads it on SIGHUP. A file that cannot be loaded is a ConfigError
    naming its line.
    """
    try:
        return PolicyRegistry(settings.ratelimit_policies)
    except PolicyError as exc:
        raise ConfigError(f"rate limit policies: {exc}") from None


def add_to_server(
    server: grpc.aio.Server, redis: RedisBackend, settings: Settings, policies: PolicyRegistry
) -> str:
    """Register RateLimitService on ``server``, answering named policies from ``policies``; returns
    its full name (for health and reflection)."""
    if settings.ratelimit_timeout <= 0:
        raise ConfigError("rate limit timeout: COORD_RATELIMIT_TIMEOUT must be longer than zero")
    timeout = min(settings.ratelimit_timeout, settings.redis_timeout)
    denials = Denials() if settings.ratelimit_deny_cache else None
    store = RateLimitStore(redis, ScriptSet(__name__), RateLimitKeys(settings.tenant), timeout, denials)
    servicer = RateLimitServicer(store, policies, Limits.from_settings(settings))
    ratelimit_pb2_grpc.add_RateLimitServiceServicer_to_server(servicer, server)
    return SERVICE_NAME
