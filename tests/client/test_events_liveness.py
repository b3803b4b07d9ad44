"""A subscription whose stream goes silent (a paused server: TCP stays open, nothing arrives) is
abandoned after three heartbeat intervals and resumed from its cursors, without loss or duplicate."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from coord_client import AsyncClient, Client

from ..conftest import RedisProcess, wait_for
from ..server.test_process import ServerProcess


def test_sync_subscription_resumes_a_silent_stream(
    tmp_path: Path, redis_factory: Callable[..., RedisProcess]
) -> None:
    backing = redis_factory()
    server = ServerProcess(tmp_path, COORD_REDIS_URL=backing.url).start()
    try:
        with Client(server.target) as client:
            client.events.publish("live.t", b"1")
            subscription = client.events.subscribe("live.t", start="earliest", heartbeat=0.3)
            seen: list[bytes] = []

            def consume() -> None:
                for event in subscription:
                    seen.append(event.data)
                    if event.data == b"2":
                        return

            reader = threading.Thread(target=consume)
            reader.start()
            wait_for(lambda: seen == [b"1"], "the first event")
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGSTOP)  # silent, not closed
            try:
                wait_for(lambda: subscription.reconnects >= 1, "the silent stream to be abandoned", 10)
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            client.events.publish("live.t", b"2")
            reader.join(20)
            assert not reader.is_alive()
            subscription.close()
        assert seen == [b"1", b"2"]
    finally:
        server.kill()


def test_async_subscription_resumes_a_silent_stream(
    tmp_path: Path, redis_factory: Callable[..., RedisProcess]
) -> None:
    backing = redis_factory()
    server = ServerProcess(tmp_path, COORD_REDIS_URL=backing.url).start()
    assert server.proc is not None
    pid = server.proc.pid

    async def scenario() -> tuple[list[bytes], int]:
        async with AsyncClient(server.target) as client:
            await client.events.publish("live.a", b"1")
            subscription = client.events.subscribe("live.a", start="earliest", heartbeat=0.3)
            seen: list[bytes] = []

            async def consume() -> None:
                async for event in subscription:
                    seen.append(event.data)
                    if event.data == b"2":
                        return

            reader = asyncio.get_running_loop().create_task(consume())
            await _until(lambda: seen == [b"1"])
            os.kill(pid, signal.SIGSTOP)
            try:
                await _until(lambda: subscription.reconnects >= 1)
            finally:
                os.kill(pid, signal.SIGCONT)
            await client.events.publish("live.a", b"2")
            await asyncio.wait_for(reader, 20)
            return seen, subscription.reconnects

    try:
        seen, reconnects = asyncio.run(scenario())
        assert seen == [b"1", b"2"] and reconnects >= 1
    finally:
        server.kill()


async def _until(check: Callable[[], bool], limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while not check():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.05)
