"""A recorder of what a workload observed, and checkers of the invariants Coord promises over it.

A fault test runs a workload (locks, rate limits, events, cache) while a fault is on, records every
outcome the clients saw in a :class:`History`, then checks the history, not only status codes:

    history = History()
    ...
    sent = history.now()
    result = client.lock.acquire("L", ttl=5)
    if result:
        grant = history.lock_granted("L", "worker-1", result.fencing_token,
                                     requested_at=sent, lease_until=sent + result.grant.valid_for)
        ...
        history.lock_released(grant)             # before sending the Release
    ...
    check_locks(history)         # no two grants of a lock overlap; fencing tokens increase
    check_rate_limit(history)    # no window admitted more than its limit
    check_events(history)        # every acknowledged event delivered, or inside a reported gap
    check_cache(history)         # every read returns the latest acknowledged write or a later one
    check_errors(history)        # failures: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED only

Times are this process's ``time.monotonic()`` readings (``history.now()``); only their order is used,
never a duration. Every checker raises AssertionError naming each violation (the first ten) and how
many there were. Each ``History`` method is thread-safe, so worker threads share one history.

What each checker can and cannot know, so that it never fails a correct server:

- **Locks.** A client knows it holds a grant from the moment the answer arrives (``granted_at``) until
  it sends the Release, or until its lease runs out by its own clock, anchored at the moment it *sent*
  the request (``lease_until = requested_at + valid_for``), whichever is first. The server's grant
  contains that interval, so two intervals of one lock that overlap (an exclusive grant with any other)
  are a real violation. Fencing tokens are distinct per lock, and a grant seen before another was
  requested has the smaller token.
- **Rate limits.** Only admitted decisions are counted, by their ``decide_time`` (the Redis clock, which
  is also the one the limit is enforced by). A call that failed may have consumed, never admitted.
- **Events.** A subscriber is responsible for every acknowledged event after the cursor it started
  from; each must be delivered to it or lie strictly between a reported gap's ``after_id`` and
  ``first_available_id``. A publish that failed may or may not have stored its event: it is neither
  required nor forbidden.
- **Cache.** A write whose outcome is unknown (it failed, or timed out) may still land, at any time:
  its value is always a possible read. An acknowledged write is superseded only by an acknowledged write
  that started after it finished; a read may return any write not superseded by the time it started.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc

ALLOWED_FAILURES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})
_SHOWN = 10  # violations listed in an AssertionError


# ---------------------------------------------------------------- records


@dataclass
class LockGrant:
    """One grant as its holder saw it; ``end`` is when it stopped relying on it (or None: never did)."""

    lock: str
    holder: str
    fencing_token: int
    requested_at: float
    granted_at: float
    lease_until: float
    mode: str = "exclusive"
    released_at: float | None = None

    @property
    def end(self) -> float:
        """The end of the interval the holder may act in: the Release sent, or the lease run out."""
        return self.lease_until if self.released_at is None else min(self.lease_until, self.released_at)

    def __str__(self) -> str:
        return f"{self.holder} token {self.fencing_token} [{self.granted_at:.3f}, {self.end:.3f})"


@dataclass(frozen=True)
class RateDecision:
    """One Check's decision for one key. ``decide_ms`` is the Redis clock (None when unavailable)."""

    key: str
    limit: int
    period: float
    algorithm: str
    allowed: bool
    decide_ms: int | None
    cost: int = 1
    burst: int = 0
    backend_unavailable: bool = False


@dataclass(frozen=True)
class Published:
    topic: str
    id: str | int
    data: bytes | None


@dataclass
class Subscriber:
    """What one subscriber was responsible for and what it got."""

    name: str
    topic: str
    after: str | int  # the cursor it started after: events after it are owed to it
    delivered: list[tuple[str | int, bytes | None]] = field(default_factory=list)
    gaps: list[tuple[str | int, str | int]] = field(default_factory=list)


@dataclass(frozen=True)
class CacheOp:
    key: str
    value: bytes | None  # None: a read that found nothing
    started: float
    finished: float
    acked: bool = True  # writes: the client got the answer STORED
    version: int = 0


@dataclass(frozen=True)
class Failure:
    op: str
    code: str
    message: str


# ---------------------------------------------------------------- the recorder


class History:
    """What a workload observed, appended from any thread; read by the ``check_*`` functions."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.grants: list[LockGrant] = []
        self.decisions: list[RateDecision] = []
        self.published: list[Published] = []
        self.publish_attempts: list[tuple[str, bytes | None]] = []  # outcome unknown
        self.subscribers: dict[str, Subscriber] = {}
        self.writes: list[CacheOp] = []
        self.reads: list[CacheOp] = []
        self.failures: list[Failure] = []
        self.successes: defaultdict[str, int] = defaultdict(int)

    def now(self) -> float:
        return self.clock()

    def summary(self) -> dict[str, int]:
        """How much was recorded: to show next to a failure, or to check a workload did something."""
        with self._lock:
            subscribers = list(self.subscribers.values())
            return {
                "lock grants": len(self.grants),
                "rate decisions": len(self.decisions),
                "admitted": sum(d.allowed for d in self.decisions),
                "events acknowledged": len(self.published),
                "publishes unknown": len(self.publish_attempts),
                "events delivered": sum(len(s.delivered) for s in subscribers),
                "gaps reported": sum(len(s.gaps) for s in subscribers),
                "cache writes acknowledged": sum(w.acked for w in self.writes),
                "cache writes unknown": sum(not w.acked for w in self.writes),
                "cache reads": len(self.reads),
                "failed calls": len(self.failures),
            }

    # -- calls ---------------------------------------------------------------------------------

    def ok(self, op: str) -> None:
        """A call of ``op`` ("cache.set", "lock.acquire"...) succeeded."""
        with self._lock:
            self.successes[op] += 1

    def failed(self, op: str, error: BaseException) -> str:
        """A call of ``op`` failed with ``error`` (a coord_client CoordError or a grpc.RpcError);
        returns the status code's name."""
        code = status_name(error)
        with self._lock:
            self.failures.append(Failure(op, code, str(error)[:300]))
        return code

    def failure_codes(self) -> dict[str, int]:
        counts: defaultdict[str, int] = defaultdict(int)
        with self._lock:
            for failure in self.failures:
                counts[failure.code] += 1
        return dict(counts)

    # -- locks ---------------------------------------------------------------------------------

    def lock_granted(
        self,
        lock: str,
        holder: str,
        fencing_token: int,
        *,
        requested_at: float,
        lease_until: float,
        granted_at: float | None = None,
        mode: str = "exclusive",
    ) -> LockGrant:
        """A grant arrived (``granted_at``, default now) for a request sent at ``requested_at``;
        ``lease_until`` is ``requested_at + valid_for``."""
        grant = LockGrant(
            lock, holder, fencing_token, requested_at, self.now() if granted_at is None else granted_at,
            lease_until, str(mode),
        )  # fmt: skip
        with self._lock:
            self.grants.append(grant)
        return grant

    def lock_extended(self, grant: LockGrant, lease_until: float) -> None:
        """A renewal sent at ``lease_until - valid_for`` was confirmed: the lease lasts to ``lease_until``."""
        with self._lock:
            grant.lease_until = max(grant.lease_until, lease_until)

    def lock_released(self, grant: LockGrant, at: float | None = None) -> None:
        """The holder stops relying on the grant (call it before sending the Release)."""
        with self._lock:
            if grant.released_at is None:
                grant.released_at = self.now() if at is None else at

    # -- rate limits ---------------------------------------------------------------------------

    def rate_decision(
        self,
        key: str,
        *,
        limit: int,
        period: float,
        allowed: bool,
        decide_time: datetime | int | None,
        algorithm: str = "fixed_window",
        cost: int = 1,
        burst: int = 0,
        backend_unavailable: bool = False,
    ) -> None:
        """One decision; ``decide_time`` is the Decision's (a datetime) or Redis milliseconds."""
        if isinstance(decide_time, datetime):
            decide_ms: int | None = round(decide_time.timestamp() * 1000)
        else:
            decide_ms = decide_time
        decision = RateDecision(
            key, limit, period, algorithm, allowed, decide_ms, cost, burst, backend_unavailable
        )
        with self._lock:
            self.decisions.append(decision)

    # -- events --------------------------------------------------------------------------------

    def event_published(self, topic: str, event_id: str | int, data: bytes | None = None) -> None:
        """A publish was acknowledged with ``event_id`` (a stream id, or a volatile sequence number)."""
        with self._lock:
            self.published.append(Published(topic, event_id, data))

    def publish_unknown(self, topic: str, data: bytes | None = None) -> None:
        """A publish failed: its event may or may not exist."""
        with self._lock:
            self.publish_attempts.append((topic, data))

    def subscriber_started(self, name: str, topic: str, after: str | int) -> None:
        """Subscriber ``name`` reads ``topic`` after cursor ``after`` (owed every later event)."""
        with self._lock:
            self.subscribers[name] = Subscriber(name, topic, after)

    def event_delivered(self, subscriber: str, event_id: str | int, data: bytes | None = None) -> None:
        with self._lock:
            self.subscribers[subscriber].delivered.append((event_id, data))

    def gap_reported(self, subscriber: str, after_id: str | int, first_available_id: str | int) -> None:
        """Events strictly between the two were lost, and the subscriber was told so."""
        with self._lock:
            self.subscribers[subscriber].gaps.append((after_id, first_available_id))

    def delivered_ids(self, subscriber: str) -> list[str | int]:
        with self._lock:
            return [event_id for event_id, _ in self.subscribers[subscriber].delivered]

    # -- cache ---------------------------------------------------------------------------------

    def cache_write(
        self,
        key: str,
        value: bytes,
        *,
        started: float,
        acked: bool,
        version: int = 0,
        finished: float | None = None,
    ) -> None:
        """A Set of ``value`` sent at ``started``; ``acked`` when STORED came back (False: unknown)."""
        done = self.now() if finished is None else finished
        with self._lock:
            self.writes.append(CacheOp(key, value, started, done, acked, version))

    def cache_read(
        self,
        key: str,
        value: bytes | None,
        *,
        started: float,
        version: int = 0,
        finished: float | None = None,
    ) -> None:
        """A Get sent at ``started`` answered ``value`` (None: not found)."""
        done = self.now() if finished is None else finished
        with self._lock:
            self.reads.append(CacheOp(key, value, started, done, True, version))


# ---------------------------------------------------------------- helpers


def status_name(error: BaseException) -> str:
    """The gRPC status code name of a failed call ("UNAVAILABLE"), or the exception's type name."""
    code: Any = getattr(error, "code", None)
    if callable(code):  # grpc.RpcError
        try:
            code = code()
        except Exception:
            code = None
    if isinstance(code, grpc.StatusCode):
        return code.name
    return type(error).__name__


def _fail(what: str, violations: Sequence[str]) -> None:
    if violations:
        shown = "\n  ".join(violations[:_SHOWN])
        more = f"\n  ... and {len(violations) - _SHOWN} more" if len(violations) > _SHOWN else ""
        raise AssertionError(f"{what}: {len(violations)} violation(s)\n  {shown}{more}")


def position(event_id: str | int) -> tuple[int, ...]:
    """A comparable position: a stream id ``"1712-3"`` is (1712, 3); a sequence number n is (n,)."""
    if isinstance(event_id, int):
        return (event_id,)
    if event_id in ("", "0"):
        return (0, 0)
    ms, _, seq = event_id.partition("-")
    return (int(ms), int(seq or 0))


# ---------------------------------------------------------------- checkers


def check_errors(history: History, allowed: Iterable[str] = ALLOWED_FAILURES) -> None:
    """Every failed call failed with one of ``allowed`` codes (never INTERNAL or UNKNOWN)."""
    permitted = frozenset(allowed)
    bad = [f"{f.op}: {f.code}: {f.message}" for f in history.failures if f.code not in permitted]
    _fail(f"calls failed with codes other than {sorted(permitted)}", bad)


def check_locks(history: History | Iterable[LockGrant]) -> None:
    """No exclusive grant overlaps another grant of its lock; fencing tokens are unique per lock and
    increase in real-time order (a grant seen before another was requested has a smaller token)."""
    grants = list(history.grants if isinstance(history, History) else history)
    violations: list[str] = []
    by_lock: defaultdict[str, list[LockGrant]] = defaultdict(list)
    for grant in grants:
        by_lock[grant.lock].append(grant)
    for lock, mine in sorted(by_lock.items()):
        held = sorted((g for g in mine if g.granted_at < g.end), key=lambda g: g.granted_at)
        for i, first in enumerate(held):
            for second in held[i + 1 :]:
                if second.granted_at >= first.end:
                    break
                if "exclusive" in (first.mode, second.mode):
                    violations.append(f"lock {lock!r}: grants overlap: {first} and {second}")
        seen: dict[int, LockGrant] = {}
        for grant in mine:
            if grant.fencing_token in seen:
                other = seen[grant.fencing_token]
                violations.append(f"lock {lock!r}: fencing token given twice: {other}, {grant}")
            seen[grant.fencing_token] = grant
        by_granted = sorted(mine, key=lambda g: g.granted_at)
        by_requested = sorted(mine, key=lambda g: g.requested_at)
        # For each grant, the largest token among grants seen before it was requested must be smaller.
        best: LockGrant | None = None
        k = 0
        for later in by_requested:
            while k < len(by_granted) and by_granted[k].granted_at < later.requested_at:
                if best is None or by_granted[k].fencing_token > best.fencing_token:
                    best = by_granted[k]
                k += 1
            if best is not None and best is not later and best.fencing_token >= later.fencing_token:
                violations.append(
                    f"lock {lock!r}: fencing token went back: {best} was granted before {later} was "
                    "requested, with a token not smaller"
                )
    _fail("lock invariants", violations)


def _admitted(decisions: Iterable[RateDecision]) -> dict[tuple[str, str], list[RateDecision]]:
    groups: defaultdict[tuple[str, str], list[RateDecision]] = defaultdict(list)
    for d in decisions:
        if d.allowed:
            groups[(d.key, d.algorithm)].append(d)
    return groups


def check_rate_limit(history: History | Iterable[RateDecision]) -> None:
    """No key admitted more than its bound. Per algorithm: fixed and sliding window, at most ``limit``
    units per epoch-aligned window; sliding log, at most ``limit`` in any ``period``; token bucket
    (GCRA), at most ``burst + limit * t / period`` units in any span ``t`` (``burst`` 0 means
    ``limit``, one unit of slack for the clock's millisecond rounding)."""
    decisions = list(history.decisions if isinstance(history, History) else history)
    violations: list[str] = []
    for d in decisions:
        if d.allowed and d.decide_ms is None:
            violations.append(f"key {d.key!r}: admitted without a Redis decision (backend unavailable)")
    decided = _admitted(d for d in decisions if d.decide_ms is not None)
    for (key, algorithm), admitted in sorted(decided.items()):
        admitted.sort(key=lambda d: d.decide_ms or 0)
        limit, period_ms = admitted[0].limit, round(admitted[0].period * 1000)
        times = [d.decide_ms or 0 for d in admitted]
        costs = [d.cost for d in admitted]
        if algorithm in ("fixed_window", "sliding_window"):
            per_window: defaultdict[int, int] = defaultdict(int)
            for t, cost in zip(times, costs, strict=True):
                per_window[t // period_ms] += cost
            for window, count in sorted(per_window.items()):
                if count > limit:
                    violations.append(
                        f"key {key!r} ({algorithm}): window starting {window * period_ms} ms admitted "
                        f"{count} > limit {limit}"
                    )
        elif algorithm == "sliding_log":
            j, total = 0, 0
            for i, t in enumerate(times):
                while j < len(times) and times[j] < t + period_ms:
                    total += costs[j]
                    j += 1
                if total > limit:
                    violations.append(
                        f"key {key!r} (sliding_log): {total} units admitted in the {period_ms} ms from {t} "
                        f"> limit {limit}"
                    )
                total -= costs[i]
        elif algorithm == "token_bucket":
            capacity = admitted[0].burst or limit
            # max over i <= j of units(i..j) - rate * (t_j - t_i) must stay within capacity (+1 slack).
            rate = limit / period_ms  # units per ms
            cumulative, lowest, worst = 0, float("inf"), float("-inf")
            for t, cost in zip(times, costs, strict=True):
                lowest = min(lowest, cumulative - rate * t)
                cumulative += cost
                worst = max(worst, cumulative - rate * t - lowest)
            if worst > capacity + 1:
                violations.append(
                    f"key {key!r} (token_bucket): {worst:.1f} units beyond the rate > burst {capacity}"
                )
        else:
            raise ValueError(f"unknown algorithm {algorithm!r}")
    _fail("rate limit invariants", violations)


def check_events(
    history: History,
    *,
    ordered: bool = True,
    subscribers: Iterable[str] | None = None,
) -> None:
    """Every acknowledged event after a subscriber's start cursor was delivered to it or lies inside a
    gap it was told about; delivered data matches what was published; with ``ordered``, each
    subscriber got its events in order, each once."""
    violations: list[str] = []
    names = list(history.subscribers) if subscribers is None else list(subscribers)
    acked: defaultdict[str, dict[tuple[int, ...], Published]] = defaultdict(dict)
    for p in history.published:
        acked[p.topic][position(p.id)] = p
    for name in names:
        sub = history.subscribers[name]
        start = position(sub.after)
        got = {position(event_id): data for event_id, data in sub.delivered}
        gaps = [(position(a), position(b)) for a, b in sub.gaps]
        missing = []
        for pos, p in sorted(acked[sub.topic].items()):
            if pos <= start:
                continue
            if pos in got:
                if p.data is not None and got[pos] is not None and got[pos] != p.data:
                    violations.append(
                        f"subscriber {name!r}: event {p.id} delivered as {got[pos]!r}, published {p.data!r}"
                    )
                continue
            if any(a < pos < b for a, b in gaps):
                continue
            missing.append(str(p.id))
        if missing:
            violations.append(
                f"subscriber {name!r} on {sub.topic!r}: {len(missing)} acknowledged event(s) neither "
                f"delivered nor inside a reported gap (first: {', '.join(missing[:5])}); "
                f"gaps reported: {sub.gaps}"
            )
        if ordered:
            positions = [position(event_id) for event_id, _ in sub.delivered]
            for before, after in itertools.pairwise(positions):
                if after <= before:
                    violations.append(
                        f"subscriber {name!r}: delivery out of order or repeated: {before} then {after}"
                    )
                    break
    _fail("event invariants", violations)


def check_cache(history: History) -> None:
    """Every read returns a write that was not superseded when the read started: the latest
    acknowledged one or a later (or still unknown) one; never nothing once a write was acknowledged,
    never a value nobody wrote, never an older version than an acknowledged write's."""
    violations: list[str] = []
    writes: defaultdict[str, list[CacheOp]] = defaultdict(list)
    for w in history.writes:
        writes[w.key].append(w)
    for r in sorted(history.reads, key=lambda op: (op.key, op.started)):
        mine = writes[r.key]
        done = [w for w in mine if w.acked and w.finished < r.started]
        # An acknowledged write is superseded by an acknowledged write that began after it ended and
        # ended before the read began; a write of unknown outcome may land at any time.
        newest_start = max((o.started for o in done), default=float("-inf"))
        candidates = [
            w for w in mine if w.started < r.finished and not (w.acked and w.finished < newest_start)
        ]
        if r.value is None:
            if done:
                latest = max(done, key=lambda w: w.finished)
                violations.append(
                    f"key {r.key!r}: read at {r.started:.3f} found nothing after acknowledged write of "
                    f"{latest.value!r} (version {latest.version})"
                )
            continue
        if not any(w.value == r.value for w in candidates):
            stale = [w for w in mine if w.value == r.value]
            what = "a superseded write" if stale else "a value nobody wrote"
            latest_value = max(done, key=lambda w: w.finished).value if done else None
            violations.append(
                f"key {r.key!r}: read at {r.started:.3f} returned {r.value!r}, {what} "
                f"(latest acknowledged before it: {latest_value!r})"
            )
            continue
        floor = max((w.version for w in done if w.version), default=0)
        if r.version and r.version < floor:
            violations.append(
                f"key {r.key!r}: read at {r.started:.3f} returned version {r.version} < acknowledged {floor}"
            )
    _fail("cache invariants", violations)


__all__ = [
    "ALLOWED_FAILURES",
    "CacheOp",
    "Failure",
    "History",
    "LockGrant",
    "Published",
    "RateDecision",
    "Subscriber",
    "check_cache",
    "check_errors",
    "check_events",
    "check_locks",
    "check_rate_limit",
    "position",
    "status_name",
]
