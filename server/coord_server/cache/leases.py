"""Fill leases (memcached's leases, from "Scaling Memcache at Facebook"): stampede-safe misses.

A GetOrLease that misses takes the key's fill lease when nobody holds it and no live waiter is ahead
of it (``scripts/_lease.lua``): its caller computes the value and Sets it with the lease's token. A
caller that misses while the lease is held waits in the key's queue (in Redis, shared by every Coord
server on it, first come first served) until:

- a Set stores the key (any stored Set ends the lease and wakes every waiter: they find the value);
- the lease ends unfilled: it expired (its holder died or was too slow), a Delete ended it, or a
  waiter that had just taken it went away. The first waiter then takes a new lease. The first waiter
  sleeps no longer than the lease's expiry (its fallback timer); a waiter that takes the lease wakes
  the next one, which so learns when the new lease ends;
- or its wait (or the RPC deadline) ends: it answers with neither value nor lease.

Wake-ups, heartbeats and the subscription are the shared waiter machinery (``coord_server/waiters.py``),
exactly as for a lock's Acquire and a list's Pop. Nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..redis import RedisBackend, ScriptArg, ScriptSet
from ..waiters import Waiters, deadline_left
from .keys import CacheKeys

# The first waiter's fallback timer fires this long after the lease's expiry, so the expiry has
# passed by the Redis clock when it looks again.
EXPIRY_MARGIN_S = 0.002

# get_or_lease.lua's answer codes.
_NEITHER, _HIT, _LEASED, _STALE = 0, 1, 2, 3


def new_lease_token() -> str:
    """A random lease token (144 bits): only its holder can fill the key under it."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class LeaseWaiting:
    """How waiting GetOrLease calls behave: heartbeat TTL and interval, and the longest sleep without
    a wake-up (the first waiter also wakes when the lease expires)."""

    waiter_ttl_ms: int
    heartbeat_interval: float
    fallback: float


@dataclass(frozen=True)
class LeaseAnswer:
    """How a GetOrLease ended: ``hit`` is get_or_lease.lua's hit reply (``{1, value, version,
    expire_ms, tags, compute_ms, ...}``, as get.lua's) or None; else ``token`` is the caller's lease
    (until ``expire_ms``), else neither (the wait ended, or the call did not wait). A ``stale`` hit
    (code 3) may come with the lease too."""

    hit: Any | None
    token: str = ""
    expire_ms: int = 0
    waited: bool = False
    stale: bool = False


class Leases:
    """One tenant's fill leases: GetOrLease, and the wake-ups of the writes that end a lease."""

    def __init__(
        self, redis: RedisBackend, scripts: ScriptSet, keys: CacheKeys, waiting: LeaseWaiting
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._waiting = waiting
        self._get_or_lease = scripts["get_or_lease"]
        self._cancel = scripts["lease_cancel"]
        self.waiters = Waiters(
            redis,
            keys,
            scripts["lease_heartbeat"],
            heartbeat_args=[waiting.waiter_ttl_ms],
            heartbeat_interval=waiting.heartbeat_interval,
            label="cache lease",
        )

    async def notify(self, wake: Sequence[Any]) -> None:
        """Wake the waiters a script returned (a Set, a Delete); nothing to do for an empty list."""
        if wake:
            await self.waiters.notify(wake)

    async def get_or_lease(
        self,
        key: str,
        lease_ttl_ms: int,
        wait_s: float,
        *,
        stale_version: int = 0,
        serve_stale: bool = False,
    ) -> LeaseAnswer:
        """Read ``key`` or take its fill lease for ``lease_ttl_ms``; while another caller holds it,
        wait up to ``wait_s`` (and the RPC deadline) for its fill, or for the lease to pass on.
        An entry at ``stale_version`` (non-zero: its tags were invalidated, see tags.py) counts as
        missing. With ``serve_stale`` an entry past its expiry, within its stale grace, is answered
        at once, never waited on.

        A caller that is cancelled while waiting leaves the queue at once; a lease that went to it as
        it went away ends at once (the next waiter takes it).
        """
        token = new_lease_token()
        wait_s = min(wait_s, deadline_left())
        look = (stale_version, serve_stale)
        if wait_s <= 0:
            reply = await self._attempt(key, lease_ttl_ms, token, "", look)
            await self.notify(_wake(reply))
            return _answer(reply, token, waited=False)
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + wait_s
        async with self.waiters.waiting(key) as waiter:
            done = failed = waited = False
            attempt: asyncio.Future[Any] | None = None
            try:
                while True:
                    waiter.woken.clear()  # before the attempt: a wake-up during it is kept
                    # Shielded: a cancelled caller must not cancel a script that may already be on its
                    # way to Redis; the cleanup waits for it instead, so the attempt can never queue
                    # the waiter again after the cleanup took it out (nor keep a lease unseen).
                    attempt = asyncio.ensure_future(self._attempt(key, lease_ttl_ms, token, waiter.wid, look))
                    reply = await asyncio.shield(attempt)
                    await self.notify(_wake(reply))
                    if int(reply[0]) != _NEITHER:
                        done = True
                        return _answer(reply, token, waited=waited)
                    attempt = None  # answered and handled: nothing for the cleanup to wait for
                    waited = True
                    left = ends_at - loop.time()
                    if left <= 0:
                        return LeaseAnswer(None, waited=True)
                    # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as
                    # the wake-up does; a timeout scope around the plain await never loses one.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(left, self._fallback(reply))):
                            await waiter.woken.wait()
            except Exception:
                failed = True
                raise
            finally:
                if not done:
                    cleanup = self._redis.detach(self._leave(key, waiter.wid, token, attempt))
                    # A wait that ran out (or was cancelled) has left the queue when it ends; a failed
                    # one is answered at once (with Redis unreachable the cleanup could take as long
                    # as the failure did). Either way the cleanup runs to its end.
                    if not failed:
                        with contextlib.suppress(Exception):
                            await asyncio.shield(cleanup)

    async def _attempt(
        self, key: str, lease_ttl_ms: int, token: str, wid: str, look: tuple[int, bool] = (0, False)
    ) -> Any:
        """One run of get_or_lease.lua; ``look`` is (the version to count as missing, serve stale)."""
        stale, serve_stale = look
        args: list[ScriptArg] = [
            wid,
            lease_ttl_ms,
            token,
            self._waiting.waiter_ttl_ms,
            self.waiters.server_id,
        ]
        if stale or serve_stale:  # optional arguments: a plain call sends five
            args.append(str(stale) if stale else "")
        if serve_stale:
            args.append("1")
        return await self._redis.run(self._get_or_lease, self._keys.all(key), args)

    def _fallback(self, reply: Any) -> float:
        """How long a waiter sleeps without a wake-up: the first one until the lease expires (it takes
        the lease then), every other one the fallback (a Set, a Delete, or the waiter ahead taking
        the lease wakes it)."""
        expire_ms, position, now_ms = int(reply[1]), int(reply[2]), int(reply[3])
        if position == 1 and expire_ms:
            return min(self._waiting.fallback, max(0, expire_ms - now_ms) / 1000 + EXPIRY_MARGIN_S)
        return self._waiting.fallback

    async def _leave(self, key: str, wid: str, token: str, attempt: asyncio.Future[Any] | None) -> None:
        """Take a waiter that stopped waiting out of the queue, after its last attempt has been
        answered (never before it), ending a lease that attempt took for a caller now gone."""
        if attempt is not None and not attempt.cancelled():
            with contextlib.suppress(Exception):  # its failure was the caller's to see (or nobody's)
                await self.notify(_wake(await attempt))
        await self.notify(await self._redis.run(self._cancel, self._keys.all(key), [wid, token]))


def _wake(reply: Any) -> Sequence[Any]:
    """The wake list of a get_or_lease.lua reply: always its last element."""
    wake: Sequence[Any] = reply[-1]
    return wake


def _answer(reply: Any, token: str, *, waited: bool) -> LeaseAnswer:
    code = int(reply[0])
    if code == _HIT:
        return LeaseAnswer(reply, waited=waited)
    if code == _LEASED:
        return LeaseAnswer(None, token, int(reply[1]), waited=waited)
    if code == _STALE:  # {3, value, version, expire_ms, tags, compute_ms, lease_expire_ms, wake}
        lease_expire_ms = int(reply[6])
        return LeaseAnswer(reply, token if lease_expire_ms else "", lease_expire_ms, waited, stale=True)
    return LeaseAnswer(None, waited=waited)


__all__ = ["EXPIRY_MARGIN_S", "LeaseAnswer", "LeaseWaiting", "Leases", "new_lease_token"]
