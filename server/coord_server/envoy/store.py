"""Deciding one request's limited descriptors: one should_rate_limit.lua call. No gRPC in here."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import BackendUnavailable
from ..redis import RedisBackend, ScriptArg, ScriptCall, ScriptSet
from .keys import EnvoyKeys
from .model import Match

log = logging.getLogger(__name__)

# Hits above any uint32 limit are over it whatever their number: capped so that the script's
# arithmetic stays exact in a Lua double.
MAX_HITS = 2**32


@dataclass(frozen=True)
class Limited:
    """A descriptor of the request that matched a limited rule, and the hits it adds."""

    index: int  # its position in the request
    match: Match
    hits: int


@dataclass(frozen=True)
class Outcome:
    """The script's decision for one Limited: over its limit or not, and the state it leaves."""

    over: bool
    remaining: int
    reset_us: int


class EnvoyStore:
    """One tenant's counters. ``timeout`` bounds the wait for Redis (COORD_RATELIMIT_TIMEOUT)."""

    def __init__(self, redis: RedisBackend, scripts: ScriptSet, keys: EnvoyKeys, timeout: float) -> None:
        self._redis = redis
        self._script = scripts["should_rate_limit"]
        self._keys = keys
        self._timeout = timeout

    async def decide(self, domain: str, items: Sequence[Limited]) -> list[Outcome] | None:
        """The outcome of each item, in order, decided atomically; None when Redis could not decide
        (unreachable, out of time, or in a state where it cannot serve)."""
        keys: list[str] = []
        position: dict[str, int] = {}
        args: list[ScriptArg] = [len(items)]
        for item in items:
            rule = item.match.rule
            key = self._keys.counter(domain, rule.algorithm, rule.unit_seconds, item.match.counter)
            k = position.get(key)
            if k is None:
                keys.append(key)
                k = position[key] = len(keys)  # Lua counts from 1
            algorithm, limit, period_us, interval_us = rule.script_args
            args += [k, algorithm, limit, period_us, interval_us, min(item.hits, MAX_HITS), int(rule.mode)]
        try:
            reply = (await self._redis.run_each([ScriptCall(self._script, keys, args)], limit=self._timeout))[
                0
            ]
        except (TimeoutError, BackendUnavailable) as exc:
            log.warning("Envoy rate limit request not decided: %s", exc or "timed out")
            return None
        if isinstance(reply, BackendUnavailable):  # LOADING, BUSY, READONLY...: redis/states.py
            log.warning("Envoy rate limit request not decided: %s", reply)
            return None
        if isinstance(reply, Exception):
            raise reply
        return [
            Outcome(bool(reply[i]), int(reply[i + 1]), int(reply[i + 2])) for i in range(1, len(reply), 3)
        ]
