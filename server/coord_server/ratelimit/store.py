"""Rate limit domain logic: runs check.lua and reset.lua, returns dataclasses. No gRPC in here."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BackendUnavailable
from ..redis import RedisBackend, ScriptArg, ScriptCall, ScriptSet
from .denials import DenialKey, Denials
from .keys import RateLimitKeys
from .rules import FailureMode, Rule

log = logging.getLogger(__name__)

_DRY_RUN = 1
_INDEPENDENT = 2
BACKEND_RETRY_US = 1_000_000  # the retry_after a closed rule reports when Redis could not decide


@dataclass(frozen=True)
class Item:
    """One validated descriptor: what to limit, under which rule, at what cost (1 <= cost <= capacity)."""

    key: str
    rule: Rule
    cost: int


@dataclass(frozen=True)
class LimitStatus:
    """The decision for one Item; times in microseconds by the Redis clock."""

    allowed: bool
    consumed: bool
    remaining: int
    reset_after_us: int
    retry_after_us: int


@dataclass(frozen=True)
class Decision:
    """The decision for a whole Check: one LimitStatus per Item, in order."""

    statuses: list[LimitStatus]
    now_us: int  # Redis TIME of the decision; 0 when backend_unavailable
    backend_unavailable: bool = False

    @property
    def allowed(self) -> bool:
        return all(s.allowed for s in self.statuses)


class RateLimitStore:
    """Atomic rate limit decisions on Redis. Inputs are already validated by the caller.

    ``timeout`` bounds every Check's wait for Redis (below the backend's own timeout): when it runs
    out, or Redis is unavailable, each rule's failure mode decides instead, so a Check never hangs.
    """

    def __init__(
        self,
        redis: RedisBackend,
        scripts: ScriptSet,
        keys: RateLimitKeys,
        timeout: float,
        denials: Denials | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._timeout = timeout
        self._denials = denials  # see denials.py; None unless COORD_RATELIMIT_DENY_CACHE is on
        self._check = scripts["check"]
        self._reset = scripts["reset"]

    async def check(self, plan: CheckPlan) -> Decision:
        """Decide one planned check; a fault in its script raises (see :meth:`check_many`)."""
        decision = (await self.check_many([plan]))[0]
        if isinstance(decision, Exception):
            raise decision
        return decision

    def plan(self, items: Sequence[Item], *, scope: str, dry_run: bool, independent: bool) -> CheckPlan:
        """The script calls that decide ``items``, for :meth:`check` and :meth:`check_many`.

        Items of one scope are decided by one atomic script. All-or-nothing (``independent`` false)
        needs every item in one scope: the caller checks that.
        """
        flags = (_DRY_RUN if dry_run else 0) | (_INDEPENDENT if independent else 0)
        groups: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(scope or item.key, []).append(index)
        if not independent and len(groups) > 1:
            raise AssertionError("all-or-nothing over several scopes is refused by the servicer")
        calls = [self._check_call(group_scope, [items[i] for i in indexes], flags)
                 for group_scope, indexes in groups.items()]  # fmt: skip
        # A denial of this check can be remembered (and this check answered from memory) only when
        # it has one descriptor of cost 1: see denials.py.
        memo = (scope, items[0].key, items[0].rule) if len(items) == 1 and items[0].cost == 1 else None
        return CheckPlan(items, list(groups.values()), calls, memo)

    async def check_many(self, plans: Sequence[CheckPlan]) -> list[Decision | Exception]:
        """Decide many independent checks; their scripts go to Redis together, without waiting on
        one another. Each check gets its Decision, or the error of its own script (a fault, never a
        denial). When Redis cannot answer within the timeout, every rule's failure mode decides."""
        decisions: list[Decision | Exception | None] = [None] * len(plans)
        to_send = list(range(len(plans)))
        denials = self._denials
        if denials is not None:
            to_send = []
            for index, plan in enumerate(plans):
                known = denials.lookup(plan.memo) if plan.memo is not None else None
                if known is None:
                    to_send.append(index)
                else:
                    retry_us, reset_us, now_us = known
                    decisions[index] = Decision([LimitStatus(False, False, 0, reset_us, retry_us)], now_us)
        asked_at = time.monotonic()
        calls = [call for index in to_send for call in plans[index].calls]
        try:
            replies = await self._redis.run_each(calls, limit=self._timeout) if calls else []
        except (TimeoutError, BackendUnavailable) as exc:
            log.warning("rate limit check decided by failure modes: %s", exc or "timed out")
            for index in to_send:
                decisions[index] = _failure_decision(plans[index].items)
            return [d for d in decisions if d is not None]
        at = 0
        undecided: BackendUnavailable | None = None  # logged once per batch, not once per check
        for index in to_send:
            plan = plans[index]
            mine, at = replies[at : at + len(plan.calls)], at + len(plan.calls)
            failed = next((r for r in mine if isinstance(r, Exception)), None)
            if isinstance(failed, BackendUnavailable):
                # A state of Redis in this check's reply (LOADING, BUSY, READONLY, OOM...: see
                # redis/states.py), not a fault of its script: its rules' failure modes decide.
                undecided = failed
                decision: Decision | Exception = _failure_decision(plan.items)
            else:
                decision = failed if failed is not None else _decision(plan, mine)
            decisions[index] = decision
            if denials is not None and plan.memo is not None and isinstance(decision, Decision):
                status = decision.statuses[0]
                if not status.allowed and status.remaining == 0:
                    denials.note(
                        plan.memo, status.retry_after_us, status.reset_after_us, decision.now_us, asked_at
                    )
        if undecided is not None:
            log.warning("rate limit checks decided by failure modes: %s", undecided)
        return [d for d in decisions if d is not None]

    def _check_call(self, scope: str, items: Sequence[Item], flags: int) -> ScriptCall:
        keys = [self._keys.state(scope, item.key, item.rule.algorithm) for item in items]
        args: list[ScriptArg] = [flags]
        for item in items:
            algorithm, limit, period_us, burst, interval = item.rule.script_args
            args += [algorithm, limit, period_us, burst, item.cost, interval]
        return ScriptCall(self._check, keys, args)

    async def reset(self, scope: str, key: str) -> bool:
        """Clear ``key``'s state under every algorithm; True when any existed."""
        if self._denials is not None:
            self._denials.forget(scope, key)
        existed = int(await self._redis.run(self._reset, self._keys.all_states(scope, key), [])) > 0
        if self._denials is not None:
            # Again: a check answered before the reset may have been remembered meanwhile (its reply
            # comes first on the shared connection, so it is noted by now).
            self._denials.forget(scope, key)
        return existed


@dataclass(frozen=True)
class CheckPlan:
    """One check, ready to send: its items, their indexes per scope, and one script call per scope."""

    items: Sequence[Item]
    groups: list[list[int]]
    calls: list[ScriptCall]
    memo: DenialKey | None = None  # what a denial of this check is remembered under, if it can be


def _decision(plan: CheckPlan, replies: Sequence[Any]) -> Decision:
    statuses: list[LimitStatus | None] = [None] * len(plan.items)
    now_us = 0
    for indexes, reply in zip(plan.groups, replies, strict=True):
        now_us = now_us or int(reply[0])
        for n, index in enumerate(indexes):
            a, c, remaining, reset_us, retry_us = (int(v) for v in reply[1 + 5 * n : 6 + 5 * n])
            statuses[index] = LimitStatus(bool(a), bool(c), remaining, reset_us, retry_us)
    return Decision([s for s in statuses if s is not None], now_us)


def _failure_decision(items: Sequence[Item]) -> Decision:
    statuses = []
    for item in items:
        is_open = item.rule.on_backend_error is FailureMode.OPEN
        statuses.append(LimitStatus(is_open, False, 0, 0, 0 if is_open else BACKEND_RETRY_US))
    return Decision(statuses, 0, backend_unavailable=True)
