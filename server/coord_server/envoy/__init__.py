"""Envoy's rate limit service, ``envoy.service.ratelimit.v3.RateLimitService``, configured in
envoyproxy/ratelimit's YAML format (COORD_ENVOY_RATELIMIT_CONFIG) and decided atomically per request.
docs/envoy.md tells the whole story."""

from __future__ import annotations

import grpc
from envoy.service.ratelimit.v3 import rls_pb2

from .. import metrics
from .._grpc import add_service
from ..config import ConfigError, Settings
from ..redis import RedisBackend, ScriptSet
from ..tenancy import PerTenant
from ..validation import Limits
from .keys import EnvoyKeys
from .loading import EnvoyConfigError, EnvoyLimits
from .servicer import EnvoyRateLimitServicer, FailureMode
from .stats import EnvoyStats
from .store import EnvoyStore

SERVICE = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"]
SERVICE_NAME: str = SERVICE.full_name
_MODES = {mode.value: mode for mode in FailureMode}


def load_config(settings: Settings) -> EnvoyLimits:
    """The configuration of ``settings.envoy_ratelimit_config`` (no domain for an empty path). The
    app owns it and reloads it on SIGHUP. A config that cannot be loaded is a ConfigError naming the
    file and line."""
    try:
        return EnvoyLimits(settings.envoy_ratelimit_config)
    except EnvoyConfigError as exc:
        raise ConfigError(f"Envoy rate limit config: {exc}") from None


def add_to_server(
    server: grpc.aio.Server, redis: RedisBackend, settings: Settings, limits: EnvoyLimits
) -> str:
    """Register RateLimitService on ``server``, answering from ``limits``; returns its full name.

    It is always registered (reflection lists it): with no configuration every descriptor is OK, as
    envoyproxy/ratelimit answers for a domain it does not know. Each tenant's counters are its own
    (``coord:<tenant>:envoy:``); the configuration is shared.
    """
    mode = _MODES.get(settings.envoy_ratelimit_failure_mode.strip().lower())
    if mode is None:
        raise ConfigError(
            f"COORD_ENVOY_RATELIMIT_FAILURE_MODE: {settings.envoy_ratelimit_failure_mode!r} is not one of "
            f"{', '.join(_MODES)}"
        )
    if settings.ratelimit_timeout <= 0:
        raise ConfigError("rate limit timeout: COORD_RATELIMIT_TIMEOUT must be longer than zero")
    timeout = min(settings.ratelimit_timeout, settings.redis_timeout)
    scripts = ScriptSet(__name__)

    def store_of(tenant: str) -> EnvoyStore:
        return EnvoyStore(redis, scripts, EnvoyKeys(tenant), timeout)

    servicer = EnvoyRateLimitServicer(
        limits,
        PerTenant(store_of, settings.tenant),
        Limits.from_settings(settings),
        headers=settings.envoy_ratelimit_headers,
        failure_mode=mode,
    )
    counted = metrics.of(server)
    if counted is not None:
        servicer.stats = stats = EnvoyStats(counted)
        limits.on_load = stats.on_load
    add_service(server, servicer, SERVICE)
    return SERVICE_NAME


__all__ = ["SERVICE_NAME", "EnvoyLimits", "add_to_server", "load_config"]
