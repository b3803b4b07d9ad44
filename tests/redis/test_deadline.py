"""The RPC deadline: narrowed for part of a request, and never inherited by background work."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from coord_server.errors import DeadlineExceeded
from coord_server.redis import RedisBackend, Script, deadline

from ..conftest import RedisProcess

PING = Script.from_source("ping", "return 'pong'")


async def seen() -> float | None:
    return deadline.current()


def test_a_task_started_inside_an_rpc_inherits_its_deadline_unless_detached() -> None:
    async def main() -> tuple[Any, ...]:
        at = time.monotonic() + 30
        token = deadline.set(at)  # as the RPC boundary does
        try:
            inherited = await asyncio.create_task(seen())
            detached = await asyncio.create_task(seen(), context=deadline.detached_context())
            with deadline.detached():
                inside = deadline.current()
                started_inside = await asyncio.create_task(seen())
            after = deadline.current()
        finally:
            deadline.reset(token)
        return at, inherited, detached, inside, started_inside, after, deadline.current()

    at, inherited, detached, inside, started_inside, after, outside = asyncio.run(main())
    assert inherited == at  # what a plain create_task does: the trap detached() exists for
    assert detached is None and inside is None and started_inside is None
    assert after == at and outside is None


def test_narrowed_keeps_the_earlier_deadline() -> None:
    token = deadline.set(time.monotonic() + 10)
    try:
        outer = deadline.current()
        assert outer is not None
        with deadline.narrowed(60) as at:
            assert at == outer == deadline.current()  # the RPC's own deadline comes first
        with deadline.narrowed(1) as at:
            assert at is not None and at < outer and deadline.current() == at
        with deadline.narrowed(None) as at:
            assert at == outer
        assert deadline.current() == outer
    finally:
        deadline.reset(token)
    with deadline.narrowed(5) as at:  # no RPC deadline: the narrowed one alone
        assert at is not None and deadline.current() == at
    assert deadline.current() is None


@pytest.mark.parametrize("coalesce", [True, False])
def test_detached_work_is_not_bound_by_the_rpc_deadline(redis_single: RedisProcess, coalesce: bool) -> None:
    """A cleanup detached from an RPC whose deadline has passed still reaches Redis; the RPC does not."""

    async def main() -> tuple[Any, Any]:
        backend = RedisBackend.from_url(redis_single.url, cluster=False, timeout=2.0, coalesce=coalesce)
        try:
            token = deadline.set(time.monotonic() - 1)  # an RPC out of time
            try:
                cleanup = backend.detach(backend.run(PING, ["{k}"], []))
                try:
                    in_rpc: Any = await backend.run(PING, ["{k}"], [])
                except DeadlineExceeded as exc:
                    in_rpc = exc
            finally:
                deadline.reset(token)
            return in_rpc, await cleanup
        finally:
            await backend.close()

    in_rpc, detached = asyncio.run(main())
    assert isinstance(in_rpc, DeadlineExceeded)
    assert detached == b"pong"
