"""A per-process memory of denials that answers repeated checks of a denied key without Redis.

When Redis denies a one-descriptor check of cost 1 and reports nothing left (``remaining`` 0), that
key, under that rule, stays denied until ``retry_after`` has passed: every algorithm here only gets
*more* consumed by other checks (no one can consume under this rule while it denies cost 1), and the
only thing that frees it sooner is time, which ``retry_after`` already accounts for. Until then the
same check's answer is known exactly: denied, nothing consumed, ``remaining`` 0, ``retry_after`` and
``reset_after`` counting down from what Redis said. So a client hammering a denied key costs this
server a dictionary lookup instead of a Redis round trip (Envoy's ratelimit users ask for exactly
this: denied traffic should not load Redis).

What it cannot see, and so what opting in accepts (documented in docs/ratelimit.md):
- a Reset made through **another** Coord server: this server keeps denying that key until the
  remembered ``retry_after`` runs out (a Reset through this server forgets at once);
- consumption under a **different** rule on the same key (another limit for the same key name): the
  decision stays right (more consumption only denies longer), but the ``retry_after`` reported may be
  shorter than the true one; the next check after it goes to Redis and learns the truth.

Only checks that would be answered identically are served: one descriptor, cost 1, the same scope,
key, algorithm and rule. Memory is bounded (expired entries are dropped first, then everything).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .rules import Rule

DenialKey = tuple[str, str, Rule]  # scope, key, rule (algorithm and parameters; frozen, hashable)


@dataclass(frozen=True)
class Denial:
    retry_at: float  # time.monotonic() when the check may be allowed again
    reset_at: float  # time.monotonic() when the key's state is back to "nothing consumed"
    redis_now_us: int  # Redis TIME of the decision
    noted_at: float  # time.monotonic() at the decision, to carry the Redis clock forward


class Denials:
    """The memory of exact denials (see the module docstring). Not shared between processes."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: dict[DenialKey, Denial] = {}
        self._max = max_entries

    def note(
        self, key: DenialKey, retry_after_us: int, reset_after_us: int, redis_now_us: int, asked_at: float
    ) -> None:
        """Remember a denial Redis just made of a cost-1 check with nothing remaining.

        ``asked_at`` is time.monotonic() from before the check was sent: Redis decided later than
        that, so counting ``retry_after`` from it can only forget the denial early, never late.
        """
        if retry_after_us <= 0:
            return
        now = time.monotonic()
        if len(self._entries) >= self._max:
            self._entries = {k: d for k, d in self._entries.items() if d.retry_at > now}
            if len(self._entries) >= self._max:
                self._entries.clear()
        self._entries[key] = Denial(
            asked_at + retry_after_us / 1e6, asked_at + reset_after_us / 1e6, redis_now_us, asked_at
        )

    def lookup(self, key: DenialKey) -> tuple[int, int, int] | None:
        """``(retry_after_us, reset_after_us, redis_now_us)`` now, when ``key`` is still denied."""
        denial = self._entries.get(key)
        if denial is None:
            return None
        now = time.monotonic()
        if now >= denial.retry_at:
            del self._entries[key]
            return None
        elapsed_us = int((now - denial.noted_at) * 1e6)
        retry_us = max(1, int((denial.retry_at - now) * 1e6))
        reset_us = max(retry_us, int((denial.reset_at - now) * 1e6))
        return retry_us, reset_us, denial.redis_now_us + elapsed_us

    def forget(self, scope: str, key: str) -> None:
        """A Reset of ``key`` through this server: drop what is remembered of it, under every rule."""
        for entry in [k for k in self._entries if k[0] == scope and k[1] == key]:
            del self._entries[entry]
