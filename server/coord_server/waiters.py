"""Wake-ups for calls that wait in a fair queue in Redis (a lock's Acquire, a list's Pop): one pub/sub
subscription and one heartbeat loop per process, service and tenant.

Each store that lets calls wait has its own :class:`Waiters`, with a random server id, and listens
on one channel, ``keys.wake_channel(id)`` (``coord:<tenant>:<service>:wake:<id>``): a wake-up (and a
heartbeat) only ever names waiters of the tenant and service whose scripts returned them.

Scripts that may make a waiter eligible (a lock release, a list push, a give-up, an expiry they
noticed) return the eligible waiters as (server id, waiter id) pairs; :meth:`Waiters.notify` wakes
local ones directly and publishes the others' ids to their servers' channels. A woken waiter re-runs
its script, which decides. Nothing polls: a waiter sleeps until a wake-up, its own fallback timer or
the end of its wait.

A waiting call never waits for the subscription: its first attempt runs at once (so with Redis down
it fails as fast as a call that does not wait), while the task subscribes. A wake-up published
before the subscription is confirmed is lost, so every confirmation (the first, and each one after a
reconnect) wakes every local waiter once: each re-runs its script, which sees whatever it missed.

The same background task renews the heartbeat deadline of every local waiter, one pipelined call of
the service's heartbeat script per queue (name) per interval, so the queue entries of a crashed
server age out within the waiter TTL. The heartbeat script also reports every eligible waiter, which
repairs a lost pub/sub message (pub/sub delivers at most once), and the waiters no longer queued
(this server stalled past the TTL), which are woken to queue again at the tail.

Heartbeat script contract: KEYS = ``keys.all(name)``; ARGV = the store's fixed arguments, then the
waiter ids of this server on that queue; reply ``{missing waiter ids, {server, waiter id, ...}}``.

On Redis Cluster a plain PUBLISH is broadcast over the cluster bus, so the subscription is made on
one node (redis-py's ClusterPubSub picks it by the channel's slot) and receives messages published
through any node. Sharded pub/sub (SPUBLISH, Redis 7 only) is not used so Redis 6.2 works too.

The task starts with the first local waiter and stops (closing its connection) once no waiter has
been left for ``LINGER`` seconds: a queue that is waited on now and then does not pay a SUBSCRIBE and
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
from typing import Any, Protocol

from .errors import CoordError
from .redis import RedisBackend, Script, ScriptArg, ScriptCall, deadline, text

log = logging.getLogger(__name__)


class QueueKeys(Protocol):
    """The keys of a service with waiting calls: every key of one name, and a server's channel."""

    def all(self, name: str) -> list[str]: ...

    def wake_channel(self, server_id: str) -> str: ...


@dataclass
class Waiter:
    """One local waiting call: ``woken`` is set by wake-ups and cleared before each attempt."""

    name: str
    wid: str
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class Waiters:
    """One tenant's registry of waiting calls of one service in this process, and its
    subscription/heartbeat task."""

    LINGER = 30.0  # seconds the subscription outlives the last waiter

    def __init__(
        self,
        redis: RedisBackend,
        keys: QueueKeys,
        heartbeat: Script,
        *,
        heartbeat_args: Sequence[ScriptArg],
        heartbeat_interval: float,
        label: str,
    ) -> None:
        """``heartbeat_args`` are the heartbeat script's arguments before the waiter ids; ``label``
        names the service in log messages ("lock", "list")."""
        self.server_id = secrets.token_hex(8)
        self._redis = redis
        self._keys = keys
        self._heartbeat = heartbeat
        self._heartbeat_args = list(heartbeat_args)
        self._interval = heartbeat_interval
        self._label = label
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
                log.warning("could not publish a %s wake-up to server %s: %s", self._label, server, exc)

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
                    "%s wake-up subscription failed (%s: %s); resubscribing",
                    self._label,
                    type(exc).__name__,
                    exc,
                )
                self.wake_all()
                await asyncio.sleep(min(1.0, self._interval))
            finally:
                await pubsub.aclose()

    async def _beat(self) -> None:
        by_name: dict[str, list[str]] = defaultdict(list)
        for waiter in self._waiters.values():
            by_name[waiter.name].append(waiter.wid)
        if not by_name:
            return
        calls = [
            ScriptCall(self._heartbeat, self._keys.all(name), [*self._heartbeat_args, *wids])
            for name, wids in by_name.items()
        ]
        try:
            replies = await self._redis.run_many(calls)
        except CoordError as exc:
            log.warning("%s waiter heartbeat failed: %s", self._label, exc)
            return
        for reply in replies:
            for wid in reply[0]:  # dropped from the queue (this server stalled): re-queue at the tail
                self.wake(text(wid))
            await self.notify(reply[1])


def deadline_left() -> float:
    """Seconds until the RPC deadline, minus a margin to answer in time (infinite when none): where a
    wait ends, so that its answer (nothing came) still reaches the caller."""
    at = deadline.current()
    if at is None:
        return float("inf")
    left = at - time.monotonic()
    return max(0.0, left - min(0.05, left * 0.1))
