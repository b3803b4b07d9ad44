"""The soak test's load: every service at a steady rate, over a bounded set of names.

The pacer starts one *step* (one client call) every ``1 / rate`` seconds, open loop: a slow server
does not slow the pacer down, it makes calls pile up in flight (at most ``max_in_flight``; a step
that would pass the cap is counted as *behind* and not sent). The steps cycle through a fixed,
shuffled mix (:data:`MIX`): cache set/get/delete/touch/increment and batch reads, rate-limit checks
(mostly allowed, some keys always denied, a three-rule scope), lock try-acquire and release,
session create/validate/update/revoke, event publishes (stream, consumer-group and volatile topics).

Background loops add what a step cannot be: a contention round every second (three callers block on
one lock; each is woken by the previous one's release), a Hold stream every two seconds, long-lived
subscriptions (a pattern, two exact topics, a volatile topic) and a consumer-group member acking what
it is handed, plus short-lived ones opened and closed again (a subscription every 15 s; every 30 s a
consumer of a second group, which has no other member, so that each one is handed events) so that
stream set-up and tear-down run all along.

Every name the load uses comes from a fixed set and every key it writes has a TTL, so Redis's key
count and memory have a steady state; ``bench/soak.py`` shortens the server's retention windows so
that the steady state is reached within the warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from coord_client import AsyncClient
from coord_client.events.models import Event
from coord_client.lock.models import Grant
from coord_client.ratelimit.models import Limit

T = TypeVar("T")

VALUE = b"v" * 100
PAYLOAD = b"e" * 100
CACHE_KEYS = 512
COUNTERS = 32
LOCKS = 32
RATE_KEYS = 256
HOT_KEYS = 4  # "10/m" keys checked several times a second: nearly always denied
SCOPES = 64
SESSION_SLOTS = 64
SUBJECTS = 16
TOPICS = 4  # soak.ev.0 .. soak.ev.3
DEDUP_IDS = 1000
JOBS = "soak.jobs"
GROUP = "soak-workers"
SHORT_GROUP = "soak-short"  # only the short-lived consumers: each one reads events
VOLATILE = "soak.vol"
MAX_DISTINCT_FAILURES = 40


@dataclass
class Interval:
    """What the load did since the previous drain; ``latencies_ns`` by kind of call."""

    ops: int
    errors: int
    behind: int
    latencies_ns: dict[str, list[int]]
    loop_lags_ms: list[float]  # how late each 10 ms sleep of the load's event loop woke up

    def all_latencies(self) -> list[int]:
        return [ns for values in self.latencies_ns.values() for ns in values]


@dataclass
class Recorder:
    """Counts calls and failures and keeps the latency of each timed call until the next drain."""

    ops: int = 0
    errors: int = 0
    behind: int = 0
    latencies_ns: dict[str, list[int]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)
    total_ops: int = 0
    loop_lags_ms: list[float] = field(default_factory=list)  # see Interval

    async def call(self, kind: str, call: Awaitable[T], *, timed: bool = True) -> T | None:
        """Await one client call; None when it failed (the failure is counted and remembered).

        ``timed=False`` for calls whose duration is mostly waiting by design (a blocking acquire).
        """
        began = time.perf_counter_ns()
        try:
            result = await call
        except Exception as exc:
            self.fail(exc, kind)
            return None
        if timed:
            took = time.perf_counter_ns() - began
            self.latencies_ns.setdefault(kind, []).append(took)
        self.count()
        return result

    def count(self) -> None:
        self.ops += 1
        self.total_ops += 1

    def fail(self, exc: BaseException, kind: str = "") -> None:
        self.count()
        self.errors += 1
        what = f"{kind + ': ' if kind else ''}{type(exc).__name__}: {str(exc)[:160]}"
        if what in self.failures or len(self.failures) < MAX_DISTINCT_FAILURES:
            self.failures[what] += 1
        else:
            self.failures["(other failures)"] += 1

    def drain(self) -> Interval:
        out = Interval(self.ops, self.errors, self.behind, self.latencies_ns, self.loop_lags_ms)
        self.ops = self.errors = self.behind = 0
        self.latencies_ns = {}
        self.loop_lags_ms = []
        return out


@dataclass
class EventCounts:
    published: Counter[str] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)  # by subscription name


Step = Callable[[int], Coroutine[Any, Any, None]]


class Load:
    """The soak's load on one ``AsyncClient``; :meth:`run` until cancelled."""

    def __init__(self, client: AsyncClient, rate: float, *, max_in_flight: int = 256, seed: int = 7) -> None:
        self.client = client
        self.rate = rate
        self.max_in_flight = max_in_flight
        self.rec = Recorder()
        self.events = EventCounts()
        self._grants: dict[str, Grant] = {}
        self._sessions: dict[int, tuple[str, int]] = {}  # slot -> (token, visits)
        self._in_flight: set[asyncio.Task[None]] = set()
        mix: list[Step] = []
        for step, weight in self._mix():
            mix += [step] * weight
        random.Random(seed).shuffle(mix)
        self._steps = mix

    def _mix(self) -> list[tuple[Step, int]]:
        """Each step and its share of the paced calls (in percent)."""
        return [
            (self._cache_set, 10),
            (self._cache_get, 14),
            (self._cache_batch_get, 2),
            (self._cache_increment, 5),
            (self._cache_delete, 4),
            (self._cache_touch, 3),
            (self._ratelimit, 12),
            (self._ratelimit_hot, 4),
            (self._ratelimit_three_rules, 2),
            (self._lock_toggle, 10),
            (self._lock_describe, 2),
            (self._session_step, 14),
            (self._publish, 10),
            (self._publish_job, 6),
            (self._publish_volatile, 2),
        ]

    # -- running -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Pace the steps and run the background loops until cancelled; then stop everything."""
        loops = [
            self._pace(),
            self._contention(),
            self._holds(),
            self._subscribe_forever("pattern soak.ev.*", "soak.ev.*"),
            self._subscribe_forever("exact soak.ev.0,1", "soak.ev.0", "soak.ev.1"),
            self._subscribe_forever("volatile soak.vol", VOLATILE, volatile=True),
            self._consume_forever(),
            self._subscription_churn(),
            self._consumer_churn(),
            self._watch_loop(),
        ]
        tasks = [asyncio.create_task(loop) for loop in loops]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *self._in_flight]:
                task.cancel()
            await asyncio.gather(*tasks, *self._in_flight, return_exceptions=True)

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rate
        next_at = loop.time()
        i = 0
        while True:
            next_at += interval
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:  # a stall of the whole process: skip what is late instead of bursting
                self.rec.behind += int(-delay / interval)
                next_at = loop.time()
            if len(self._in_flight) >= self.max_in_flight:
                self.rec.behind += 1
                continue
            step = self._steps[i % len(self._steps)]
            i += 1
            task = asyncio.create_task(step(i))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _watch_loop(self) -> None:
        """How late this process's event loop wakes up from each 10 ms sleep: a stalled load generator
        (or a machine too busy to run it) shows here, and its calls' latency is then not the server's."""
        clock = time.perf_counter  # uvloop's loop.time() counts whole milliseconds
        while True:
            asked = clock() + 0.01
            await asyncio.sleep(0.01)
            self.rec.loop_lags_ms.append(max(0.0, clock() - asked) * 1000)

    async def _every(self, seconds: float, work: Callable[[int], Awaitable[None]]) -> None:
        """Start ``work(n)`` every ``seconds``, each in its own task (a slow one does not delay the next)."""
        n = 0
        while True:
            await asyncio.sleep(seconds)
            n += 1
            task = asyncio.create_task(self._guarded(work(n)))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as exc:
            self.rec.fail(exc)

    # -- cache -------------------------------------------------------------------------------------

    async def _cache_set(self, i: int) -> None:
        await self.rec.call("cache.set", self.client.cache.set(f"soak.c.{i % CACHE_KEYS}", VALUE, ttl=30))

    async def _cache_get(self, i: int) -> None:
        await self.rec.call("cache.get", self.client.cache.get(f"soak.c.{(i * 7) % CACHE_KEYS}"))

    async def _cache_batch_get(self, i: int) -> None:
        keys = [f"soak.c.{(i + k * 61) % CACHE_KEYS}" for k in range(8)]
        await self.rec.call("cache.batch_get", self.client.cache.batch_get(keys))

    async def _cache_increment(self, i: int) -> None:
        await self.rec.call(
            "cache.increment", self.client.cache.increment(f"soak.n.{i % COUNTERS}", 1, ttl=60)
        )

    async def _cache_delete(self, i: int) -> None:
        await self.rec.call("cache.delete", self.client.cache.delete(f"soak.c.{(i * 13) % CACHE_KEYS}"))

    async def _cache_touch(self, i: int) -> None:
        await self.rec.call("cache.touch", self.client.cache.touch(f"soak.c.{(i * 3) % CACHE_KEYS}", 30))

    # -- rate limit --------------------------------------------------------------------------------

    async def _ratelimit(self, i: int) -> None:
        await self.rec.call(
            "ratelimit.limit", self.client.ratelimit.limit(f"soak.rl.{i % RATE_KEYS}", rate="20/s")
        )

    async def _ratelimit_hot(self, i: int) -> None:
        await self.rec.call(
            "ratelimit.limit (denied)", self.client.ratelimit.limit(f"soak.hot.{i % HOT_KEYS}", rate="10/m")
        )

    async def _ratelimit_three_rules(self, i: int) -> None:
        scope = f"soak.u.{i % SCOPES}"
        limits = [
            Limit(f"{scope}.s", "10/s", algorithm="sliding_window"),
            Limit(f"{scope}.m", "100/m", algorithm="sliding_window"),
            Limit(f"{scope}.h", "1000/h", algorithm="sliding_window"),
        ]
        await self.rec.call("ratelimit.check (3 rules)", self.client.ratelimit.check(*limits, scope=scope))

    # -- lock --------------------------------------------------------------------------------------

    async def _lock_toggle(self, i: int) -> None:
        """Each name is taken (try-acquire, 5 s lease) on one visit and released on the next."""
        name = f"soak.lock.{i % LOCKS}"
        grant = self._grants.pop(name, None)
        if grant is not None:
            await self.rec.call("lock.release", self.client.lock.release(name, grant.lock_token))
            return
        result = await self.rec.call("lock.acquire", self.client.lock.acquire(name, ttl=5))
        if result is not None and result.grant is not None:
            self._grants[name] = result.grant

    async def _lock_describe(self, i: int) -> None:
        await self.rec.call("lock.describe", self.client.lock.describe(f"soak.lock.{i % LOCKS}"))

    async def _contention(self) -> None:
        async def waiter(n: int, k: int) -> None:
            name = "soak.contended"
            result = await self.rec.call(
                "lock.acquire (waiting)", self.client.lock.acquire(name, ttl=5, wait=5), timed=False
            )
            if result is None or result.grant is None:
                return  # a failure was counted; a wait that ran out is not one
            await asyncio.sleep(0.01)
            await self.rec.call(
                "lock.release (contended)", self.client.lock.release(name, result.grant.lock_token)
            )

        async def round_(n: int) -> None:
            await asyncio.gather(*(waiter(n, k) for k in range(3)))

        await self._every(1.0, round_)

    async def _holds(self) -> None:
        async def hold(n: int) -> None:
            async def held() -> None:
                async with self.client.lock.hold(f"soak.hold.{n % 4}", ttl=3, wait=2):
                    await asyncio.sleep(0.2)

            await self.rec.call("lock.hold stream", held(), timed=False)

        await self._every(2.0, hold)

    # -- session -----------------------------------------------------------------------------------

    async def _session_step(self, i: int) -> None:
        """A slot's session goes create, validate, validate + update, validate, validate, revoke."""
        slot = i % SESSION_SLOTS
        token, visits = self._sessions.pop(slot, ("", 0))
        sessions = self.client.session
        if not token:
            made = await self.rec.call(
                "session.create",
                sessions.create(
                    f"soak-user-{slot % SUBJECTS}", {"role": b"reader"}, idle=30, absolute=90, label="soak"
                ),
            )
            if made is not None:
                self._sessions[slot] = (made.token, 0)
            return
        if visits >= 4:
            await self.rec.call("session.revoke", sessions.revoke(token))
            return
        if visits == 2:
            updated = await self.rec.call("session.update", sessions.update(token, increment={"hits": 1}))
            if updated is not None and updated.applied:
                self._sessions[slot] = (token, visits + 1)
            return
        valid = await self.rec.call("session.validate", sessions.validate(token, attributes="*"))
        if valid is not None and valid.session is not None:
            self._sessions[slot] = (token, visits + 1)

    # -- events ------------------------------------------------------------------------------------

    async def _publish(self, i: int) -> None:
        topic = f"soak.ev.{i % TOPICS}"
        dedup = f"d{i % DEDUP_IDS}" if i % 10 == 0 else None
        if (
            await self.rec.call("events.publish", self.client.events.publish(topic, PAYLOAD, dedup_id=dedup))
            is not None
        ):
            self.events.published[topic] += 1

    async def _publish_job(self, i: int) -> None:
        if (
            await self.rec.call("events.publish (jobs)", self.client.events.publish(JOBS, PAYLOAD))
            is not None
        ):
            self.events.published[JOBS] += 1

    async def _publish_volatile(self, i: int) -> None:
        if (
            await self.rec.call(
                "events.publish (volatile)", self.client.events.publish(VOLATILE, PAYLOAD, volatile=True)
            )
            is not None
        ):
            self.events.published[VOLATILE] += 1

    async def _subscribe_forever(self, label: str, *topics: str, volatile: bool = False) -> None:
        """One subscription for the whole run (it resumes by itself); reopened after a failure."""
        while True:
            subscription = self.client.events.subscribe(*topics, volatile=volatile)
            try:
                async for _ in subscription:
                    self.events.received[label] += 1
            except Exception as exc:
                self.rec.fail(exc, f"subscription {label}")
            finally:
                subscription.close()
            await asyncio.sleep(1.0)

    async def _consume_forever(self) -> None:
        def handle(event: Event) -> None:
            self.events.received[f"consumer {GROUP}"] += 1

        while True:
            try:
                await self.client.events.consume(JOBS, GROUP, handle, prefetch=16)
            except Exception as exc:
                self.rec.fail(exc, "consume")
            await asyncio.sleep(1.0)

    async def _subscription_churn(self) -> None:
        async def short(n: int) -> None:
            subscription = self.client.events.subscribe(f"soak.ev.{2 + n % 2}")
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        async for _ in subscription:
                            self.events.received["short subscriptions"] += 1
            finally:
                subscription.close()
            self.rec.count()

        await self._every(15.0, short)

    async def _consumer_churn(self) -> None:
        def handle(event: Event) -> None:
            self.events.received["short consumers"] += 1

        async def short(n: int) -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3.0):
                    await self.client.events.consume(JOBS, SHORT_GROUP, handle, prefetch=4)
            self.rec.count()

        await self._every(30.0, short)
