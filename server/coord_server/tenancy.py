"""The tenant of the RPC being served, and per-tenant state built on first use.

Every Redis key is ``coord:<tenant>:<service>:...`` (keys.py). The tenant is never a request field:
the auth interceptor (``auth/interceptor.py``) binds it from the caller's verified identity
(docs/security.md); when authentication is off nothing is bound and the server's configured tenant
(``COORD_TENANT``) applies. Services keep one
store (with its key builder) per tenant in a :class:`PerTenant`, so a request can only ever reach
keys of its own tenant: there is no code path that takes a tenant name from the request.

Background work (feeds, waiter heartbeats) belongs to the per-tenant object that started it, so it
needs no tenant of its own from the context.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Generic, TypeAlias, TypeVar

T = TypeVar("T")

# The tenant bound by the RPC boundary, or None outside an RPC (then the default applies).
_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("coord_tenant", default=None)

Token: TypeAlias = contextvars.Token[str | None]

#: ``bind(tenant: str | None) -> Token``: the tenant of the RPC being served; :func:`unbind` undoes it.
bind = _tenant.set
#: ``unbind(token: Token) -> None``: restore the tenant ``bind`` replaced.
unbind = _tenant.reset
#: ``bound() -> str | None``: the tenant bound by the RPC boundary, or None.
bound = _tenant.get


class PerTenant(Generic[T]):
    """One ``T`` per tenant, made by ``factory(tenant)`` the first time that tenant calls.

    ``get()`` answers for the tenant bound to the current RPC, or ``default`` outside one (and when
    authentication is off, where the boundary binds nothing).
    """

    __slots__ = ("_default", "_factory", "_made")

    def __init__(self, factory: Callable[[str], T], default: str) -> None:
        self._factory = factory
        self._default = default
        self._made: dict[str, T] = {}

    def get(self) -> T:
        tenant = _tenant.get() or self._default
        made = self._made.get(tenant)
        if made is None:
            made = self._made[tenant] = self._factory(tenant)
        return made

    def of(self, tenant: str) -> T:
        """The ``T`` of ``tenant`` (made if needed), whatever tenant the context has."""
        made = self._made.get(tenant)
        if made is None:
            made = self._made[tenant] = self._factory(tenant)
        return made

    def made(self) -> list[T]:
        """Every ``T`` made so far (for shutdown)."""
        return list(self._made.values())

    @property
    def default(self) -> str:
        return self._default
