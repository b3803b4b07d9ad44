"""Every Redis key the RateLimit service writes, with its hash tag.

``coord:<tenant>:ratelimit:{<scope>}:g:<key>``  STRING token bucket (GCRA) theoretical arrival time, us
``coord:<tenant>:ratelimit:{<scope>}:s:<key>``  HASH   sliding window counter: w window, c count, p previous
``coord:<tenant>:ratelimit:{<scope>}:l:<key>``  ZSET   sliding log: one member per unit, score = time in us
``coord:<tenant>:ratelimit:{<scope>}:f:<key>``  HASH   fixed window: w window index, c count

The scope defaults to the key. Every key of one scope shares the ``{<scope>}`` hash tag, so one script
can decide all descriptors of a scope on Redis Cluster. The key follows the fixed-length algorithm
letter, so names are injective. Each key has a PEXPIRE ending when its state is back to empty.
"""

from __future__ import annotations

from ..keys import hash_tag, service_prefix
from .rules import Algorithm

_LETTER = {
    Algorithm.TOKEN_BUCKET: "g",
    Algorithm.SLIDING_WINDOW: "s",
    Algorithm.SLIDING_LOG: "l",
    Algorithm.FIXED_WINDOW: "f",
}


class RateLimitKeys:
    def __init__(self, tenant: str) -> None:
        self._prefix = service_prefix(tenant, "ratelimit")

    def state(self, scope: str, key: str, algorithm: Algorithm) -> str:
        return f"{self._prefix}{hash_tag(scope or key)}:{_LETTER[algorithm]}:{key}"

    def all_states(self, scope: str, key: str) -> list[str]:
        """The key's state under every algorithm (what a Reset clears)."""
        return [self.state(scope, key, algorithm) for algorithm in Algorithm]
