"""Who is calling, what they may do, and how much: identity, permissions and per-tenant limits.

Authentication is on when ``COORD_AUTH_FILE`` or ``COORD_JWT_KEYS`` is set. Then every call but the
health service (always open, so load balancers and orchestrators can probe) and reflection (served
per ``COORD_REFLECTION``: ``auto`` serves it only when authentication is off; ``on`` serves it to
anyone, since it only describes the protos) must prove an identity:

- an API key or a JWT in ``authorization: Bearer <credential>`` metadata (authenticator.py, jwt.py),
- or, without that metadata, a client certificate whose SAN the auth file maps (mTLS).

The identity gives the tenant every key of the call lives under (``tenancy.bind``), the methods it may
call, and its tenant's limits. The auth file's format is in keys.py; the interceptor's steps and the
errors a refused call gets in interceptor.py.

When authentication is off, nothing here is installed: no interceptor, no per-call cost, and every
call works in the server's own tenant (``COORD_TENANT``).
"""

from __future__ import annotations

from dataclasses import dataclass

from grpc_health.v1 import health

from ..config import Settings
from ..reflection import SERVICE_NAMES as REFLECTION_SERVICES
from .authenticator import Authenticator
from .identity import Identity, Limits
from .interceptor import UNAUTHENTICATED_MESSAGE, AuthInterceptor
from .keys import AuthFileError, parse_auth_file
from .limits import TenantLimiter

#: Services every caller may use without credentials.
OPEN_SERVICES = frozenset({health.SERVICE_NAME, *REFLECTION_SERVICES})  # reflection: v1 and v1alpha


@dataclass(frozen=True)
class Auth:
    """The authentication state one server owns: who its callers are and their tenants' counters."""

    authenticator: Authenticator
    limiter: TenantLimiter
    interceptor: AuthInterceptor

    def reload(self) -> bool:
        """What SIGHUP does: re-read the auth file and JWT keys; a broken one is logged, the old stay."""
        return self.authenticator.reload()


def build(settings: Settings) -> Auth | None:
    """The auth state for ``settings``, or None when authentication is off (nothing to install).

    A file that cannot be used (auth file, JWT keys) raises ConfigError.
    """
    if not settings.auth_enabled:
        return None
    authenticator = Authenticator(settings)
    limiter = TenantLimiter()
    return Auth(authenticator, limiter, AuthInterceptor(authenticator, limiter, OPEN_SERVICES))


def serves_reflection(settings: Settings) -> bool:
    """Whether gRPC reflection is served: ``on``, ``off``, or ``auto`` (only without authentication)."""
    if settings.reflection == "auto":
        return not settings.auth_enabled
    return settings.reflection == "on"


__all__ = [
    "OPEN_SERVICES",
    "UNAUTHENTICATED_MESSAGE",
    "Auth",
    "AuthFileError",
    "Identity",
    "Limits",
    "build",
    "parse_auth_file",
    "serves_reflection",
]
