"""What the process-level fault scenarios add to ``history.py``: recording raw gRPC replies into a
``History``, and the two checks its checkers do not make.

- ``check_consumed``: what a limiter's state in Redis says was taken, against the admitted answers.
  A decision whose answer was lost (its server was killed, or Redis applied it after the rate-limit
  timeout answered) consumed without admitting: Redis may hold more than was admitted, never less,
  and never more than the limit.
- ``check_fencing``: fencing tokens in the order of the grants, when Redis itself lost a grant (a
  restart without persistence, an asynchronous replica promoted): two holders may then overlap,
  which ``history.check_locks`` would rightly flag, and the token is what tells them apart.

Each returns the list of violations, empty when the invariant holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from coord.ratelimit.v1 import ratelimit_pb2

from .history import History, LockGrant

ALGORITHM_NAMES = {
    ratelimit_pb2.ALGORITHM_TOKEN_BUCKET: "token_bucket",
    ratelimit_pb2.ALGORITHM_SLIDING_WINDOW: "sliding_window",
    ratelimit_pb2.ALGORITHM_SLIDING_LOG: "sliding_log",
    ratelimit_pb2.ALGORITHM_FIXED_WINDOW: "fixed_window",
}


def record_grant(history: History, lock: str, holder: str, grant: Any, *, requested_at: float) -> LockGrant:
    """A ``coord.lock.v1.Grant`` answering a request sent at ``requested_at``."""
    valid_for = grant.valid_for.ToNanoseconds() / 1e9
    return history.lock_granted(
        lock,
        holder,
        int(grant.fencing_token),
        requested_at=requested_at,
        lease_until=requested_at + valid_for,
    )


def record_check(
    history: History, reply: ratelimit_pb2.CheckResponse, rules: Sequence[ratelimit_pb2.Rule]
) -> None:
    """Each descriptor's decision of one ``CheckResponse`` (``rules`` in the request's order)."""
    decided = reply.decide_time.ToMilliseconds() if reply.HasField("decide_time") else None
    for status, rule in zip(reply.statuses, rules, strict=True):
        history.rate_decision(
            status.key,
            limit=rule.limit,
            period=rule.period.ToNanoseconds() / 1e9,
            allowed=status.allowed,
            decide_time=decided,
            algorithm=ALGORITHM_NAMES[rule.algorithm],
            cost=1,
            burst=rule.burst,
            backend_unavailable=reply.backend_unavailable,
        )


def record_batch(history: History, reply: ratelimit_pb2.CheckBatchResponse, rule: ratelimit_pb2.Rule) -> int:
    """Every check of a ``CheckBatchResponse`` whose checks have one descriptor of ``rule``; returns
    how many were admitted."""
    admitted = 0
    for result in reply.results:
        if result.WhichOneof("result") == "check":
            record_check(history, result.check, [rule])
            admitted += result.check.allowed
    return admitted


def check_consumed(*, limit: int, admitted: int, consumed: int) -> list[str]:
    """Redis holds between ``admitted`` and ``limit`` units consumed."""
    found: list[str] = []
    if consumed > limit:
        found.append(f"Redis holds {consumed} consumed for a limit of {limit}")
    if consumed < admitted:
        found.append(f"Redis holds {consumed} consumed, fewer than the {admitted} admitted")
    return found


def check_fencing(tokens_in_grant_order: Sequence[int]) -> list[str]:
    """Every grant's token is above every earlier grant's."""
    return [f"token {b} after {a}" for a, b in itertools.pairwise(tokens_in_grant_order) if b <= a]
