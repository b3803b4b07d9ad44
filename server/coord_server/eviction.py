"""Eviction safety: Coord refuses a Redis whose ``maxmemory-policy`` may evict its keys.

Locks, sessions and events must never disappear because Redis ran short of memory: an evicted lock
grant lets a second holder in, an evicted session logs its user out, an evicted stream loses events.
Every policy but ``noeviction`` evicts Coord's keys (the ``volatile-*`` ones too, since every Coord
key has a TTL). So at start-up Coord reads ``maxmemory_policy`` from ``INFO memory`` of every master
and refuses to start on an evicting one, unless ``COORD_ALLOW_EVICTION=1`` says the operator chose it
(then it logs a warning once). With ``noeviction``, a full Redis answers writes with OOM, which Coord
reports as RESOURCE_EXHAUSTED (reason BACKEND_OUT_OF_MEMORY) and nothing already stored is lost.

When Redis does not answer at start-up the check runs when it first does (the health monitor's
first successful probe, health.py); failing there keeps the server NOT_SERVING. docs/operations.md
tells the operator's side.
"""

from __future__ import annotations

import logging

from .errors import StartupError
from .redis import RedisBackend, ReplyError, introspect

log = logging.getLogger(__name__)

SAFE_POLICY = "noeviction"


class EvictionPolicyError(StartupError):
    """Redis may evict Coord's keys and COORD_ALLOW_EVICTION is not set; the message says what to do."""


async def policies(redis: RedisBackend) -> list[tuple[str, str]]:
    """``(node address, maxmemory_policy)`` of every node that holds data."""
    await introspect.refresh(redis)
    found = []
    for node in introspect.nodes(redis):
        memory = await introspect.info(redis, node, "memory")
        found.append((node.address, str(memory.get("maxmemory_policy", "unknown"))))
    return found


def message(address: str, policy: str) -> str:
    """Why Coord will not run on ``address``, and the two ways out."""
    return (
        f"Redis at {address} has maxmemory-policy {policy!r}, which may evict Coord's keys (locks, "
        "sessions and events would silently disappear when memory runs short). Either set "
        f"maxmemory-policy {SAFE_POLICY} on that Redis (CONFIG SET maxmemory-policy {SAFE_POLICY}, and "
        "in its redis.conf), keeping any cache that wants LRU in a Redis of its own, or set "
        'COORD_ALLOW_EVICTION=1 to run with eviction anyway (see docs/operations.md, "Eviction")'
    )


class EvictionCheck:
    """The check, run once it succeeds: at start-up, or on the first probe that reaches Redis."""

    def __init__(self, redis: RedisBackend, allow: bool) -> None:
        self._redis = redis
        self._allow = allow
        self.passed = False
        self._last_refusal = ""

    async def run(self) -> None:
        """Check every node's policy; EvictionPolicyError on an evicting one (unless allowed).

        Redis not answering raises BackendUnavailable (or DeadlineExceeded) and leaves the check to
        be run again.
        """
        if self.passed:
            return
        try:
            found = await policies(self._redis)
        except ReplyError as exc:  # NOPERM: a Redis user whose ACL rules predate +info
            if self._allow:
                log.warning("cannot read maxmemory-policy (%s); COORD_ALLOW_EVICTION=1: not checked", exc)
                self.passed = True
                return
            raise StartupError(
                f"cannot read maxmemory-policy from Redis ({exc}); grant Coord's Redis user +info "
                "(docs/security.md lists its ACL rules) or set COORD_ALLOW_EVICTION=1"
            ) from None
        for address, policy in found:
            if policy == SAFE_POLICY:
                continue
            if not self._allow:
                raise EvictionPolicyError(message(address, policy))
            log.warning(
                "Redis at %s has maxmemory-policy %r: Coord's keys (locks, sessions, events) may be "
                "evicted; running anyway because COORD_ALLOW_EVICTION=1",
                address,
                policy,
            )
        self.passed = True

    async def run_deferred(self) -> bool:
        """The check as the health monitor runs it once Redis answers: True when it passed; a refusal
        is logged (once per distinct message) and the server stays NOT_SERVING."""
        try:
            await self.run()
        except StartupError as exc:
            if str(exc) != self._last_refusal:
                self._last_refusal = str(exc)
                log.error("NOT_SERVING: %s", exc)
            return False
        return True
