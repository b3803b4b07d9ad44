"""Wake-ups for waiting Acquire calls: one pub/sub subscription and one heartbeat loop per process
and tenant.

Each tenant's lock store in a server process has its own :class:`Waiters`, with a random id, and
listens on one channel, ``coord:<tenant>:lock:wake:<id>``: a wake-up (and a heartbeat) only ever
names waiters of the tenant whose lock scripts returned them.

Lock scripts that may make a waiter eligible (a release, a grant, a give-up, an expiry they noticed)
return the eligible waiters as (server id, waiter id) pairs; :meth:`Waiters.notify` wakes local ones
directly and publishes the others' ids to their servers' channels. A woken waiter re-runs the acquire
script, which decides. Nothing polls: a waiter sleeps until a wake-up, its fallback timer (the
soonest holder expiry, which publishes nothing) or the end of its wait.

A waiting call never waits for the subscription: its first attempt runs at once (so with Redis down
it fails as fast as a try-lock), while the task subscribes. A wake-up published before the
subscription is confirmed is lost, so every confirmation (the first, and each one after a reconnect)
wakes every local waiter once: each re-runs the acquire script, which sees whatever it missed.

The same background task renews the heartbeat deadline of every local waiter, one pipelined
``heartbeat.lua`` call per lock per interval, so the queue entries of a crashed server age out
within the waiter TTL. The heartbeat also wakes every eligible waiter again, which repairs a lost
pub/sub message (pub/sub delivers at most once).

On Redis Cluster a plain PUBLISH is broadcast over the cluster bus, so the subscription is made on
one node (redis-py's ClusterPubSub picks it by the channel's slot) and receives messages published
through any node. Sharded pub/sub (SPUBLISH, Redis 7 only) is not used so Redis 6.2 works too.

The task starts with the first local waiter and stops (closing its connection) once no waiter has
been left for ``LINGER`` seconds: a lock that is waited on now and then does not pay a SUBSCRIBE and
its confirmation for every wait. The server's shutdown stops it at once (each Waiters registers its
own RedisBackend.on_close hook when its tenant's store is made), so a stopping server leaves nothing
behind, whatever tenants it served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CoordError
from ..redis import RedisBackend, Script, ScriptCall, deadline, text
from .keys import LockKeys

log = logging.getLogger(__name__)


@dataclass
class Waiter:
    """One local waiting call: ``woken`` is set by wake-ups and cleared before each attempt."""

    name: str
    wid: str
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class Waiters:
    """One tenant's registry of waiting calls in this process and its subscription/heartbeat task."""

    LINGER = 30.0  # seconds the subscription outlives the last waiter

    def __init__(
        self,
        redis: RedisBackend,
        keys: LockKeys,
        heartbeat: Script,
        *,
        history_ms: int,
        waiter_ttl_ms: int,
        heartbeat_interval: float,
    ) -> None:
        self.server_id = secrets.token_hex(8)
        self._redis = redis
        self._keys = keys
        self._heartbeat = heartbeat
        self._history_ms = history_ms
        self._waiter_ttl_ms = waiter_ttl_ms
        self._interval = heartbeat_interval
        self._channel = keys.wake_channel(self.server_id)
        self._waiters: dict[str, Waiter] = {}
        self._task: asyncio.Task[None] | None = None
        self._idle_stop: asyncio.TimerHandle | None = None
        redis.on_close(self.close)

    @contextlib.asynccontextmanager
    async def waiting(self, name: str) -> AsyncIterator[Waiter]:
        """Register a waiter for the block and start the subscription task if it is not running.

        The subscription is not awaited: the waiter is woken once it is confirmed (see the module
        docstring), so an attempt made before then is made again.
        """
        waiter = Waiter(name, secrets.token_hex(12))
        self._waiters[waiter.wid] = waiter
        if self._idle_stop is not None:
            self._idle_stop.cancel()
            self._idle_stop = None
        if self._task is None or self._task.done():
            # The task must not inherit the deadline of the RPC that started it.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), context=deadline.detached_context()
            )
        try:
            yield waiter
        finally:
            del self._waiters[waiter.wid]
            if not self._waiters and self._task is not None and self._idle_stop is None:
                self._idle_stop = asyncio.get_running_loop().call_later(self.LINGER, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._idle_stop = None
        if not self._waiters and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        """Stop the subscription and heartbeat task now (server shutdown)."""
        if self._idle_stop is not None:
            self._idle_stop.cancel()
            self._idle_stop = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=self._redis.timeout)

    async def notify(self, wake: Sequence[Any]) -> None:
        """Wake the waiters of a script's flat ``{server, waiter id, ...}`` list; never raises."""
        remote: dict[str, list[str]] = defaultdict(list)
        for i in range(0, len(wake) - 1, 2):
            server, wid = text(wake[i]), text(wake[i + 1])
            if server == self.server_id:
                self.wake(wid)
            else:
                remote[server].append(wid)
        for server, wids in remote.items():
            try:
                await self._redis.publish(self._keys.wake_channel(server), " ".join(wids))
            except CoordError as exc:  # a hint only: the waiter's heartbeat and timers still run
                log.warning("could not publish a lock wake-up to server %s: %s", server, exc)

    def wake(self, wid: str) -> None:
        waiter = self._waiters.get(wid)
        if waiter is not None:
            waiter.woken.set()

    def wake_all(self) -> None:
        for waiter in self._waiters.values():
            waiter.woken.set()

    # -- the background task -----------------------------------------------------------------------

    async def _run(self) -> None:
        next_beat = time.monotonic() + self._interval
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:  # wait for the confirmation: only then can no wake-up be missed
                    message = await pubsub.get_message(self._redis.timeout, confirmations=True)
                    if message is not None and message.kind == "subscribe":
                        break
                # From here on no wake-up is missed; one published before may have been: look again.
                self.wake_all()
                while True:
                    wait = max(0.0, next_beat - time.monotonic())
                    message = await pubsub.get_message(wait)
                    if message is not None:
                        for wid in text(message.data).split():
                            self.wake(wid)
                    if time.monotonic() >= next_beat:
                        await self._beat()
                        next_beat = time.monotonic() + self._interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect; meanwhile waiters rely on their own timers
                log.warning(
                    "lock wake-up subscription failed (%s: %s); resubscribing", type(exc).__name__, exc
                )
                self.wake_all()
                await asyncio.sleep(min(1.0, self._interval))
            finally:
                await pubsub.aclose()

    async def _beat(self) -> None:
        by_lock: dict[str, list[str]] = defaultdict(list)
        for waiter in self._waiters.values():
            by_lock[waiter.name].append(waiter.wid)
        if not by_lock:
            return
        calls = [
            ScriptCall(self._heartbeat, self._keys.all(name), [self._history_ms, self._waiter_ttl_ms, *wids])
            for name, wids in by_lock.items()
        ]
        try:
            replies = await self._redis.run_many(calls)
        except CoordError as exc:
            log.warning("lock waiter heartbeat failed: %s", exc)
            return
        for reply in replies:
            for wid in reply[0]:  # dropped from the queue (this server stalled): re-queue at the tail
                self.wake(text(wid))
            await self.notify(reply[1])
