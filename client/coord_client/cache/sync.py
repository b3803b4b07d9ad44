"""The sync Cache client: :class:`CacheAPI`, reached as ``Client(...).cache``, and its ``cached``
decorator's :class:`CachedFunction`. Every call is built and read by :mod:`._codec`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic, ParamSpec, TypeVar

from coord.cache.v1 import cache_pb2_grpc

from .._base import Transport
from .._call import Call, SyncService
from .._convert import Seconds
from . import _codec
from ._cached import DEFAULT_LEASE_TTL, CachedBase, EarlyExpiryLike, Filling, KeySpec
from ._near import Flight, NearCache, SyncRunner, merged, settle_many
from .models import (
    TTL,
    DeleteResult,
    Entry,
    FenceLike,
    FillLease,
    IncrementResult,
    Serializer,
    SetItem,
    SetResult,
    TouchResult,
    Value,
)

P = ParamSpec("P")
R = TypeVar("R")


class CacheAPI(SyncService):
    """Sync access to ``coord.cache.v1.CacheService``; reached as ``Client(...).cache``.

    Every method takes ``timeout`` (seconds for the whole call, retries included; default: the
    client's). Get, batch_get and touch are retried on UNAVAILABLE; writes are never retried.
    Failures raise :class:`coord_client.CoordError` subclasses; bad arguments raise ValueError or
    TypeError before anything is sent.
    """

    def __init__(self, transport: Transport, near_cache: NearCache | None = None) -> None:
        super().__init__(transport, cache_pb2_grpc.CacheServiceStub(transport.channel), _codec.SERVICE)
        self._near = near_cache
        self._runner: SyncRunner | None = None
        if near_cache is not None:
            self._runner = SyncRunner(near_cache, self._stub.WatchInvalidations, transport)

    @property
    def near_cache(self) -> NearCache | None:
        """The client's near cache (``Client(near_cache=...)``), if it has one: its ``stats``."""
        return self._near

    def get(self, key: str, *, timeout: float | None = None) -> Entry:
        """Read one entry; a miss is ``Entry(found=False)``. With a near cache, a watched key may be
        answered from memory."""
        return self._read(key, timeout)

    def batch_get(self, keys: Iterable[str], *, timeout: float | None = None) -> list[Entry]:
        """Read many entries, in the order of ``keys`` (an empty list sends nothing)."""
        return self._read_many(_codec.batch_get(keys), timeout)

    get_many = batch_get

    def set(
        self,
        key: str,
        value: Value,
        ttl: TTL = None,
        *,
        if_absent: bool = False,
        if_present: bool = False,
        if_version: int | None = None,
        fence: FenceLike | None = None,
        lease_token: str | None = None,
        tags: Iterable[str] = (),
        stale_grace: TTL = None,
        compute_time: TTL = None,
        timeout: float | None = None,
    ) -> SetResult:
        """Write one entry, under at most one condition; see :class:`SetResult` for the outcome.

        ``fence=("lock", fencing_token)`` (or a held lease) makes it a fenced write: refused with
        outcome FENCED once a newer grant of that lock has written the key. ``lease_token`` (from
        :meth:`get_or_lease`) makes it the fill of that lease: refused with outcome LEASE_LOST unless
        the lease is still the key's. Any stored write ends the key's lease and wakes its waiters.
        ``tags`` label the entry for :meth:`invalidate_tags` (at most 8 unless the server says
        otherwise); a stored write replaces the entry's tags. Reading a tagged entry costs the
        server a second Redis round trip. ``stale_grace`` keeps the entry that long past ``ttl`` as a
        stale value, which only ``get_or_lease(serve_stale=True)`` returns (every other read misses);
        ``compute_time`` (how long the value took to compute) is stored and returned as
        ``Entry.compute_time``.
        """
        tagged = tuple(_codec.tag_list(tags))
        item = SetItem(
            key,
            value,
            ttl,
            if_absent,
            if_present,
            if_version,
            fence,
            lease_token,
            tagged,
            stale_grace,
            compute_time,
        )
        return self._write((key,), _codec.set(item), timeout)

    def batch_set(
        self, items: Mapping[str, Value] | Iterable[SetItem], *, ttl: TTL = None, timeout: float | None = None
    ) -> list[SetResult]:
        """Apply many writes, each atomic on its own; ``ttl`` applies to items without their own."""
        call = _codec.batch_set(items, ttl)
        keys = [r.key for r in call.request.requests] if call.request is not None else []
        return self._write(keys, call, timeout)

    set_many = batch_set

    def invalidate_tags(self, *tags: str, timeout: float | None = None) -> int:
        """Make every entry written with any of ``tags`` a miss, for every client, at once (the entries
        stay until rewritten or expired); returns how many distinct tags were invalidated. Near
        caches are flushed: this client's at once, the others' by the server."""
        return self._write_all(_codec.invalidate_tags(tags), timeout)

    def invalidate_prefix(self, prefix: str, *, timeout: float | None = None) -> None:
        """Make every entry whose key starts with ``prefix``, a namespace ending with the server's
        delimiter (``"user:42:"``, deeper ones included), a miss, for every client, at once (the
        entries stay until rewritten or expired). Near caches are flushed: this client's at once, the
        others' by the server. A prefix that does not end with the delimiter, or is shorter than the
        server's minimum, raises InvalidArgument; FailedPrecondition when the server has none."""
        return self._write_all(_codec.invalidate_prefix(prefix), timeout)

    def delete(self, *keys: str, if_version: int | None = None, timeout: float | None = None) -> DeleteResult:
        """Remove keys (missing ones are not an error); ``if_version`` needs exactly one key."""
        return self._write(keys, _codec.delete(keys, if_version), timeout)

    def increment(
        self, key: str, delta: int = 1, ttl: TTL = None, *, timeout: float | None = None
    ) -> IncrementResult:
        """Add ``delta`` to an integer entry, creating it from 0 (with ``ttl``) if absent."""
        return self._write((key,), _codec.increment(key, delta, ttl), timeout)

    def touch(self, key: str, ttl: TTL, *, timeout: float | None = None) -> TouchResult:
        """Give an existing entry a new TTL, counted from now."""
        return self._write((key,), _codec.touch(key, ttl), timeout)

    # -- the near cache's hooks (AsyncCacheAPI has the same, awaiting) ----------------------------

    def _read(self, key: str, timeout: float | None) -> Entry:
        near = self._near
        if near is None:
            return self._send(_codec.get(key), timeout)
        ticket = near.read(key)
        if ticket.__class__ is Entry:
            return ticket
        if ticket.__class__ is Flight:  # the same read is on its way: its answer, if kept
            joined = ticket.wait(self._t.timeout if timeout is None else timeout)
            return joined if joined is not None else self._send(_codec.get(key), timeout)
        try:
            entry = self._send(_codec.get(key), timeout)
        except BaseException:
            near.settle(ticket, None)
            raise
        near.settle(ticket, entry)
        return entry

    def _read_many(self, call: Call[list[Entry]], timeout: float | None) -> list[Entry]:
        near = self._near
        if near is None or call.request is None:
            return self._send(call, timeout)
        keys = list(call.request.keys)
        local = [near.read(k, join=False) for k in keys]
        missing = [k for k, t in zip(keys, local, strict=True) if t.__class__ is not Entry]
        if not missing:
            return local  # type: ignore[return-value]
        try:
            fetched = self._send(_codec.batch_get(missing), timeout)
        except BaseException:
            settle_many(near, local, None)
            raise
        settle_many(near, local, fetched)
        return merged(local, fetched)

    def _write(self, keys: Sequence[str], call: Call[R], timeout: float | None) -> R:
        near = self._near
        if near is None:
            return self._send(call, timeout)
        near.wrote(keys)  # from now on no read in flight keeps its (older) answer
        try:
            return self._send(call, timeout)
        finally:
            near.wrote(keys)  # the next read goes to the server and sees this write

    def _write_all(self, call: Call[R], timeout: float | None) -> R:
        """A write that may change any key (InvalidateTags): the near cache drops everything."""
        near = self._near
        if near is None:
            return self._send(call, timeout)
        near.clear()  # from now on no read in flight keeps its (older) answer
        try:
            return self._send(call, timeout)
        finally:
            near.clear()  # reads go to the server and see the invalidation

    def _close_near(self) -> None:
        """Stop the near cache's stream (the client closes)."""
        if self._runner is not None:
            self._runner.close()

    def get_or_lease(
        self,
        key: str,
        lease_ttl: Seconds,
        *,
        wait: Seconds = 0,
        serve_stale: bool = False,
        timeout: float | None = None,
    ) -> FillLease:
        """Read ``key``; on a miss, take its fill lease for ``lease_ttl`` (seconds or a timedelta): the
        time this caller has to compute the value and ``set(key, value, lease_token=...)`` it.

        One caller at a time holds a key's lease. While another holds it, this call waits on the
        server up to ``wait`` (zero: not at all) and returns the value as soon as it is stored, or
        the lease once it passes on (the holder did not store in time, or a ``delete`` of the key
        ended it); waiting callers are served first come first served. A wait that ends returns
        neither (``Lease.entry.found`` False, no ``lease_token``). Without a ``timeout``, the call's
        deadline is the wait plus the client's timeout.

        ``serve_stale`` returns an entry past its expiry but within its stale grace (``set(...,
        stale_grace=...)``) at once, with ``stale`` True, instead of a miss; the caller that finds the
        lease free also gets it (``lease_token``), to refresh the value.
        """
        waiting = _codec.wait_seconds(wait, 0.0)
        deadline = _codec.lease_deadline(waiting, timeout, self._t.timeout)
        return self._send(_codec.get_or_lease(key, lease_ttl, waiting, serve_stale), deadline)

    def get_or_set(
        self,
        key: str,
        fill: Callable[[], Value],
        ttl: TTL = None,
        *,
        lease: bool = True,
        lease_ttl: Seconds = DEFAULT_LEASE_TTL,
        wait: Seconds | None = None,
        stale_grace: TTL = None,
        early_expiry: EarlyExpiryLike = None,
        timeout: float | None = None,
    ) -> bytes:
        """The stored value of ``key``; on a miss, store ``fill()`` (with ``ttl``) and return it.

        With ``lease`` (the default) a miss runs ``fill`` in one caller at a time, across threads,
        processes and Coord servers (:meth:`get_or_lease`): the caller that takes the key's fill
        lease runs ``fill`` and stores its value under the lease; the callers that miss meanwhile
        wait on the server, up to ``wait`` (default: ``lease_ttl``), and return the value it stored.
        ``lease_ttl`` (10 s by default) is how long a filler has: if it has not stored by then (it
        died, or is slow), the lease passes to the next waiter, which runs ``fill`` itself. Choose
        it longer than ``fill`` takes.

        ``fill()``'s value is returned but not stored when the lease was lost before the store (it
        passed on, or a ``delete`` of the key ended it: the value may predate that delete), and
        when the wait ended while another caller still held the lease (this caller then runs
        ``fill`` itself rather than fail; only the lease holder's value is stored). A ``fill`` that
        raises stores nothing; its lease passes on when it expires.

        ``lease=False`` is the fill without leases: a plain read, then an ``if_absent`` write, so
        concurrent callers all return the one value stored first, but ``fill`` may run in each.

        ``stale_grace`` (stale-while-revalidate, with leases) keeps each value that long past ``ttl``:
        once it has expired, callers get the stale value at once while one of them, the one that
        takes the lease, runs ``fill`` and stores the new value. ``early_expiry`` (True, a beta, or
        an :class:`EarlyExpiry`) refreshes a hit before it expires with XFetch's probability, which
        grows as the expiry nears and with the time ``fill`` took (measured and stored with the
        value); the refresh is stored only if nobody wrote the key meanwhile.
        """
        filling = Filling(lease, lease_ttl, wait, stale_grace, early_expiry)
        if filling.lease:
            waiting = filling.wait_seconds()
            got = self.get_or_lease(
                key, lease_ttl, wait=waiting, serve_stale=filling.serve_stale, timeout=timeout
            )
        else:
            got = FillLease(self.get(key, timeout=timeout))
        step = filling.step(got)
        if step.value is not None:
            return step.value
        started = time.perf_counter()
        value = _codec.value_bytes(fill())
        if step.store:
            # A lost lease (LEASE_LOST), or a key written since it was read, stores nothing; the
            # value is returned all the same.
            stored = self.set(
                key,
                value,
                ttl,
                if_absent=step.if_absent,
                if_version=step.if_version,
                lease_token=step.lease_token,
                stale_grace=stale_grace,
                compute_time=filling.compute_time(started),
                timeout=timeout,
            ).stored
            if step.if_absent and not stored:
                return _codec.fill_winner(self.get(key, timeout=timeout), value)
        return value

    def cached(
        self,
        ttl: TTL = None,
        *,
        key: KeySpec = None,
        serializer: Serializer = json,
        lease: bool = True,
        lease_ttl: Seconds = DEFAULT_LEASE_TTL,
        wait: Seconds | None = None,
        stale_grace: TTL = None,
        early_expiry: EarlyExpiryLike = None,
    ) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
        """Decorate a sync function so its results are cached in Coord for ``ttl``.

        ``key`` names the entry per call: a ``str.format`` template over the parameters
        (``"user:{user_id}"``), a callable taking the same arguments, or None for the qualified name
        plus a digest of the arguments. Results go through ``serializer`` (JSON by default). A miss
        is filled as by :meth:`get_or_set` (``lease``, ``lease_ttl``, ``wait``, ``stale_grace``,
        ``early_expiry``): under a fill lease, the function runs in one caller at a time. The wrapper
        also has ``key_for(...)`` and ``invalidate(...)``.
        """
        filling = Filling(lease, lease_ttl, wait, stale_grace, early_expiry)
        return lambda fn: CachedFunction(self, fn, ttl, key, serializer, filling=filling)


class CachedFunction(CachedBase[P], Generic[P, R]):
    """A sync function whose results live in Coord's cache (see :meth:`CacheAPI.cached`)."""

    def __init__(
        self,
        api: CacheAPI,
        fn: Callable[P, R],
        ttl: TTL,
        key: KeySpec,
        serializer: Serializer,
        *,
        filling: Filling | None = None,
    ) -> None:
        super().__init__(fn, ttl, key, serializer, filling or Filling())
        self._api, self._fn = api, fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        filling = self._filling
        stored = self._api.get_or_set(
            self.key_for(*args, **kwargs),
            lambda: self._serializer.dumps(self._fn(*args, **kwargs)),
            self._ttl,
            lease=filling.lease,
            lease_ttl=filling.lease_ttl,
            wait=filling.wait,
            stale_grace=filling.stale_grace,
            early_expiry=filling.early_expiry,
        )
        result: R = self._serializer.loads(stored)
        return result

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the cached result for these arguments; True if there was one."""
        return self._api.delete(self.key_for(*args, **kwargs)).deleted_count == 1


__all__ = ["CacheAPI", "CachedFunction"]
