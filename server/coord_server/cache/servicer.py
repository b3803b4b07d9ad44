"""CacheService transport: proto -> validated dataclasses -> store -> proto. No Redis calls here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

from coord.cache.v1 import cache_pb2, cache_pb2_grpc

from .._grpc import answer_each, rpc, stream_error, stream_rpc
from .._proto import duration_of_ms, timestamp_ms
from ..errors import invalid
from ..metrics.services import CacheLookups
from ..tenancy import PerTenant
from ..validation import Limits, duration_within, ttl_within
from .invalidations import InvalidationHub, Kind, Notice, Pushed, watch_spec, watching_off
from .prefixes import DEFAULT_RULES
from .store import CacheStore, Condition, Entry, Leased, SetItem, SetResult

Ctx = grpc.aio.ServicerContext[Any, Any]

# The longest lease token a Set may carry (Coord's own are 24 characters): anything longer is no lease.
_MAX_LEASE_TOKEN = 256
# Lua compares fencing tokens as doubles: exact only below 2^53 (Coord's own tokens are far below).
_MAX_FENCING_TOKEN = 2**53 - 1
_GET_STREAM = "CacheServicer.GetStream"
_SET_STREAM = "CacheServicer.SetStream"
# The most bytes one Entry adds to a BatchGetResponse besides its key and value: the field tag and
# length of the entry (5), of its key (3) and value (5), found (2), version (11), expire_time (19),
# compute_time (13: below 2^32 ms).
_ENTRY_FRAMING = 61
# The longest stale grace and compute time a Set may give: the entry's header holds each in 4 bytes
# of milliseconds (scripts/_entry.lua), about 49 days.
_MAX_HEADER_MS = 2**32 - 1


class CacheServicer(cache_pb2_grpc.CacheServiceServicer):
    # Every call reaches the store of the caller's tenant (tenancy.py): one lookup, no await.
    def __init__(self, stores: PerTenant[CacheStore], limits: Limits, max_reply_bytes: int) -> None:
        self._stores = stores
        self._limits = limits
        self._max_reply_bytes = max_reply_bytes  # gRPC would refuse to send a larger reply
        self.lookups: CacheLookups | None = None  # hits and misses, when metrics are on
        self.max_lease_ms = 60_000  # the longest fill lease (COORD_CACHE_MAX_LEASE; add_to_server sets it)
        self.max_tags = 8  # the most tags one Set may carry (COORD_CACHE_MAX_TAGS; add_to_server sets it)
        self.prefix_rules = DEFAULT_RULES  # what a namespace is (COORD_CACHE_PREFIX_*; add_to_server sets it)
        # Each tenant's invalidation subscription; None when COORD_CACHE_INVALIDATIONS is off.
        self.invalidations: PerTenant[InvalidationHub] | None = None

    @rpc
    async def Get(self, request: cache_pb2.GetRequest, context: Ctx) -> cache_pb2.GetResponse:
        return await self._get(request)

    @stream_rpc
    async def GetStream(
        self, requests: AsyncIterator[cache_pb2.GetStreamRequest], context: Ctx
    ) -> AsyncIterator[cache_pb2.GetStreamResponse]:
        async for request, response, error in answer_each(requests, self._get_streamed, _GET_STREAM):
            yield cache_pb2.GetStreamResponse(
                request_id=request.request_id, **_result("get", response, error)
            )

    async def _get_streamed(self, request: cache_pb2.GetStreamRequest) -> cache_pb2.GetResponse:
        return await self._get(request.get)

    async def _get(self, request: cache_pb2.GetRequest) -> cache_pb2.GetResponse:
        """Get's whole work, shared by the unary call and every message of GetStream."""
        key = self._limits.key("key", request.key)
        entry = await self._stores.get().get(key)
        if self.lookups is not None:
            self.lookups.one(entry.found)
        return cache_pb2.GetResponse(entry=_entry_pb(entry))

    @rpc
    async def BatchGet(self, request: cache_pb2.BatchGetRequest, context: Ctx) -> cache_pb2.BatchGetResponse:
        self._limits.batch("keys", len(request.keys))
        keys = [self._limits.key(f"keys[{i}]", k) for i, k in enumerate(request.keys)]
        # Bounded before fetching: a reply gRPC could not send is refused without reading it all.
        store = self._stores.get()
        entries = await store.get_many(keys, max_bytes=self._max_reply_bytes, per_entry=_ENTRY_FRAMING)
        if self.lookups is not None:
            self.lookups.many(e.found for e in entries)
        return cache_pb2.BatchGetResponse(entries=[_entry_pb(e) for e in entries])

    @rpc
    async def Set(self, request: cache_pb2.SetRequest, context: Ctx) -> cache_pb2.SetResponse:
        return _set_pb(await self._stores.get().set(self._set_item("", request)))

    @stream_rpc
    async def SetStream(
        self, requests: AsyncIterator[cache_pb2.SetStreamRequest], context: Ctx
    ) -> AsyncIterator[cache_pb2.SetStreamResponse]:
        async for request, response, error in answer_each(requests, self._set_streamed, _SET_STREAM):
            yield cache_pb2.SetStreamResponse(
                request_id=request.request_id, **_result("set", response, error)
            )

    async def _set_streamed(self, request: cache_pb2.SetStreamRequest) -> cache_pb2.SetResponse:
        return _set_pb(await self._stores.get().set(self._set_item("", request.set)))

    @rpc
    async def BatchSet(self, request: cache_pb2.BatchSetRequest, context: Ctx) -> cache_pb2.BatchSetResponse:
        self._limits.batch("requests", len(request.requests))
        items = [self._set_item(f"requests[{i}].", r) for i, r in enumerate(request.requests)]
        results = await self._stores.get().set_many(items)
        return cache_pb2.BatchSetResponse(responses=[_set_pb(r) for r in results])

    @rpc
    async def Delete(self, request: cache_pb2.DeleteRequest, context: Ctx) -> cache_pb2.DeleteResponse:
        self._limits.batch("keys", len(request.keys))
        keys = [self._limits.key(f"keys[{i}]", k) for i, k in enumerate(request.keys)]
        if request.if_version and len(keys) != 1:
            raise invalid("if_version", f"needs exactly one key (got {len(keys)})")
        results = await self._stores.get().delete(keys, request.if_version)
        return cache_pb2.DeleteResponse(
            deleted_count=sum(1 for r in results if r.outcome == r.outcome.DELETED),
            results=[
                cache_pb2.DeleteResult(key=r.key, outcome=int(r.outcome), version=r.version)  # type: ignore[arg-type]
                for r in results
            ],
        )

    @rpc
    async def Increment(
        self, request: cache_pb2.IncrementRequest, context: Ctx
    ) -> cache_pb2.IncrementResponse:
        key = self._limits.key("key", request.key)
        ttl = self._limits.ttl("ttl", request.ttl)
        result = await self._stores.get().increment(key, request.delta, ttl)
        return cache_pb2.IncrementResponse(
            value=result.value,
            version=result.version,
            created=result.created,
            expire_time=timestamp_ms(result.expire_ms),
        )

    @rpc
    async def Touch(self, request: cache_pb2.TouchRequest, context: Ctx) -> cache_pb2.TouchResponse:
        key = self._limits.key("key", request.key)
        ttl = self._limits.ttl("ttl", request.ttl)
        result = await self._stores.get().touch(key, ttl)
        return cache_pb2.TouchResponse(found=result.found, expire_time=timestamp_ms(result.expire_ms))

    @stream_rpc
    async def WatchInvalidations(
        self, request: cache_pb2.WatchInvalidationsRequest, context: Ctx
    ) -> AsyncIterator[cache_pb2.WatchInvalidationsResponse]:
        if self.invalidations is None:
            raise watching_off()
        spec = watch_spec(self._limits, request.prefixes, request.keys, request.values, request.batch)
        async for notice in self.invalidations.get().watch(spec):
            yield _notice_pb(notice)

    @rpc
    async def GetOrLease(
        self, request: cache_pb2.GetOrLeaseRequest, context: Ctx
    ) -> cache_pb2.GetOrLeaseResponse:
        key = self._limits.key("key", request.key)
        lease_ms = ttl_within("lease_ttl", request.lease_ttl, 1, self.max_lease_ms)  # required: no default
        wait_ms = duration_within("wait", request.wait, 0, self._limits.max_ttl_ms)
        store = self._stores.get()
        leased = await store.get_or_lease(key, lease_ms, wait_ms / 1000, serve_stale=request.serve_stale)
        if self.lookups is not None:
            self.lookups.one(leased.entry.found)
        return _leased_pb(leased)

    @rpc
    async def InvalidateTags(
        self, request: cache_pb2.InvalidateTagsRequest, context: Ctx
    ) -> cache_pb2.InvalidateTagsResponse:
        self._limits.batch("tags", len(request.tags))
        tags = [self._limits.key(f"tags[{i}]", t) for i, t in enumerate(request.tags)]
        count = await self._stores.get().invalidate_tags(tags)
        return cache_pb2.InvalidateTagsResponse(tag_count=count)

    @rpc
    async def InvalidatePrefix(
        self, request: cache_pb2.InvalidatePrefixRequest, context: Ctx
    ) -> cache_pb2.InvalidatePrefixResponse:
        prefix = self.prefix_rules.check("prefix", request.prefix, self._limits)
        await self._stores.get().invalidate_prefix(prefix)
        return cache_pb2.InvalidatePrefixResponse()

    def _tags(self, field: str, tags: Sequence[str]) -> tuple[str, ...]:
        """A Set's tags, each under the key rules (no newline: tags.py packs them with newlines),
        at most ``max_tags``; a tag given twice counts once."""
        if len(tags) > self.max_tags:
            description = f"holds {len(tags)} tags; the limit is {self.max_tags} (COORD_CACHE_MAX_TAGS)"
            raise invalid(
                field, description, reason="BATCH_TOO_LARGE", limit=str(self.max_tags), actual=str(len(tags))
            )
        return tuple(dict.fromkeys(self._limits.key(f"{field}[{i}]", t) for i, t in enumerate(tags)))

    def _set_item(self, prefix: str, request: cache_pb2.SetRequest) -> SetItem:
        key = self._limits.key(prefix + "key", request.key)
        value = self._limits.value(prefix + "value", request.value)
        ttl = self._limits.ttl(prefix + "ttl", request.ttl)
        which = request.WhichOneof("condition")
        if which == "if_version" and request.if_version == 0:
            raise invalid(prefix + "if_version", "must be non-zero (use if_absent to require a missing key)")
        condition = {
            None: Condition.ALWAYS,
            "if_absent": Condition.IF_ABSENT,
            "if_present": Condition.IF_PRESENT,
            "if_version": Condition.IF_VERSION,
        }[which]
        fence_lock, token = "", 0
        if request.HasField("fence"):
            fence_lock = self._limits.key(prefix + "fence.lock_name", request.fence.lock_name)
            token = request.fence.fencing_token
            if not 0 < token <= _MAX_FENCING_TOKEN:
                raise invalid(prefix + "fence.fencing_token", f"must be between 1 and {_MAX_FENCING_TOKEN}")
        if len(request.lease_token) > _MAX_LEASE_TOKEN:
            raise invalid(prefix + "lease_token", f"must be at most {_MAX_LEASE_TOKEN} characters")
        tags = self._tags(prefix + "tags", request.tags)
        longest = min(_MAX_HEADER_MS, self._limits.max_ttl_ms)
        grace = duration_within(prefix + "stale_grace", request.stale_grace, 0, longest, unset_ms=0)
        compute = duration_within(prefix + "compute_time", request.compute_time, 0, longest, unset_ms=0)
        return SetItem(
            key,
            value,
            ttl,
            condition,
            request.if_version,
            fence_lock,
            token,
            request.lease_token,
            tags,
            stale_grace_ms=grace,
            compute_ms=compute,
        )


def _entry_pb(entry: Entry) -> cache_pb2.Entry:
    if not entry.found:
        return cache_pb2.Entry(key=entry.key, found=False)
    return cache_pb2.Entry(
        key=entry.key,
        found=True,
        value=entry.value,
        version=entry.version,
        expire_time=timestamp_ms(entry.expire_ms),
        compute_time=duration_of_ms(entry.compute_ms) if entry.compute_ms else None,
    )


def _result(field: str, response: Message | None, error: status_pb2.Status | None) -> dict[str, Any]:
    """The ``result`` of a GetStream or SetStream answer: ``field`` set to the response, or ``error``
    to the status the unary call would have failed with."""
    if error is None:
        assert response is not None
        return {field: response}
    return {"error": stream_error(error)}


def _invalidation_pb(key: str, version: int, pushed: Pushed | None) -> cache_pb2.Invalidation:
    entry = None
    if pushed is not None:  # the entry the Set left, as a Get would return it
        entry = _entry_pb(Entry(key, True, pushed.value, version, pushed.expire_ms, pushed.compute_ms))
    return cache_pb2.Invalidation(key=key, version=version, entry=entry)


def _notice_pb(notice: Notice) -> cache_pb2.WatchInvalidationsResponse:
    if notice.kind is Kind.INVALIDATION:
        return cache_pb2.WatchInvalidationsResponse(
            sequence=notice.sequence, invalidation=_invalidation_pb(notice.key, notice.version, notice.pushed)
        )
    if notice.kind is Kind.BATCH:
        changes = [_invalidation_pb(*change) for change in notice.batch]
        return cache_pb2.WatchInvalidationsResponse(
            sequence=notice.sequence, batch=cache_pb2.InvalidationBatch(invalidations=changes)
        )
    if notice.kind is Kind.FLUSH:
        return cache_pb2.WatchInvalidationsResponse(
            sequence=notice.sequence, flush=cache_pb2.Flush(reason=notice.reason)
        )
    return cache_pb2.WatchInvalidationsResponse(sequence=notice.sequence, ready=cache_pb2.Ready())


def _leased_pb(leased: Leased) -> cache_pb2.GetOrLeaseResponse:
    return cache_pb2.GetOrLeaseResponse(
        entry=_entry_pb(leased.entry),
        lease_token=leased.token,
        lease_expire_time=timestamp_ms(leased.expire_ms) if leased.token else None,
        waited=leased.waited,
        stale=leased.stale,
    )


def _set_pb(result: SetResult) -> cache_pb2.SetResponse:
    return cache_pb2.SetResponse(
        outcome=int(result.outcome),  # type: ignore[arg-type]
        version=result.version,
        expire_time=timestamp_ms(result.expire_ms),
        fencing_token=result.fencing_token,
    )
