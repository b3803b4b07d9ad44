"""The RateLimit service: atomic multi-descriptor checks (token bucket, sliding window counter,
sliding log, fixed window), reset, and named policies reloaded on SIGHUP."""

from __future__ import annotations

import grpc

from coord.ratelimit.v1 import ratelimit_pb2

from .. import metrics
from .._grpc import add_service
from ..config import ConfigError, Settings
from ..metrics.services import RateLimitDecisions
from ..redis import RedisBackend, ScriptSet
from ..tenancy import PerTenant
from ..validation import Limits
from .denials import Denials
from .keys import RateLimitKeys
from .policies import PolicyError, PolicyRegistry
from .servicer import RateLimitServicer
from .store import RateLimitStore

SERVICE = ratelimit_pb2.DESCRIPTOR.services_by_name["RateLimitService"]
SERVICE_NAME: str = SERVICE.full_name


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
    its full name (for health and reflection).

    Each tenant gets its own store, made on its first call: its keys under
    ``coord:<tenant>:ratelimit:``, and its own memory of denials (so one tenant's denied key never
    answers another tenant's check). The policies are shared: a policy is a rule, not state.
    """
    if settings.ratelimit_timeout <= 0:
        raise ConfigError("rate limit timeout: COORD_RATELIMIT_TIMEOUT must be longer than zero")
    timeout = min(settings.ratelimit_timeout, settings.redis_timeout)
    scripts = ScriptSet(__name__)
    deny_cache = settings.ratelimit_deny_cache

    def store_of(tenant: str) -> RateLimitStore:
        denials = Denials() if deny_cache else None
        return RateLimitStore(redis, scripts, RateLimitKeys(tenant), timeout, denials)

    stores = PerTenant(store_of, settings.tenant)
    servicer = RateLimitServicer(stores, policies, Limits.from_settings(settings))
    counted = metrics.of(server)
    if counted is not None:
        servicer.decisions = RateLimitDecisions(counted)
    add_service(server, servicer, SERVICE)
    return SERVICE_NAME
