"""Inline rules of checks, validated once per distinct rule and kept by the servicer that owns them.

Most traffic repeats a handful of rules, and validating one costs more than the rest of a check's
preparation. Rules are immutable and only valid ones are kept, so a hit is exactly what validating
again would give.
"""

from __future__ import annotations

from coord.ratelimit.v1 import ratelimit_pb2

from ..validation import duration_within
from .rules import MAX_PERIOD_MS, MIN_PERIOD_MS, Rule, make_rule

# A rule's identity: every field of the message that validation reads.
_Fields = tuple[int, int, int, int, int, int, str]


class InlineRules:
    """Validated inline rules by their fields, at most ``max_rules`` of them."""

    def __init__(self, max_rules: int = 4096) -> None:
        self._max = max_rules
        self._rules: dict[_Fields, Rule] = {}

    def __len__(self) -> int:
        return len(self._rules)

    def get(self, prefix: str, r: ratelimit_pb2.Rule) -> Rule:
        """The validated rule ``r``; InvalidArgument naming ``prefix`` + the field when it is invalid."""
        period = r.period
        fields = (r.algorithm, r.limit, period.seconds, period.nanos, r.burst, r.on_backend_error, r.name)
        rule = self._rules.get(fields)
        if rule is None:
            rule = make_rule(
                prefix,
                algorithm=int(r.algorithm),
                limit=r.limit,
                period_ms=duration_within(
                    prefix + "period", period, MIN_PERIOD_MS, MAX_PERIOD_MS, whole=True
                ),
                burst=r.burst,
                on_backend_error=int(r.on_backend_error),
                name=r.name,
            )
            if len(self._rules) >= self._max:
                self._rules.clear()  # many distinct rules: start over rather than grow without bound
            self._rules[fields] = rule
        return rule
