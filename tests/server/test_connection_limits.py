"""What one client connection may hold and for how long: the COORD_MAX_CONCURRENT_STREAMS,
COORD_MAX_CONNECTION_AGE/_GRACE/_IDLE, COORD_MIN_PING_INTERVAL and COORD_MAX_PING_STRIKES settings
reach the gRPC server and act on real connections.

What a connection did is read from gRPC's own bookkeeping (channelz, kept by every channel and server
of this process): the streams each side started and the limit the server advertised.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import grpc
from grpc._cython import cygrpc

from coord.cache.v1 import cache_pb2 as pb
from coord.cache.v1 import cache_pb2_grpc
from coord_server.app import server_options
from coord_server.config import Settings

from ..conftest import CoordThread, RedisProcess

_UNLIMITED_MS = 2**31 - 1


def test_server_options_carry_the_settings() -> None:
    options = dict(server_options(Settings()))
    assert options["grpc.max_concurrent_streams"] == 10_000
    assert options["grpc.max_connection_age_ms"] == 30 * 60 * 1000
    assert options["grpc.max_connection_age_grace_ms"] == _UNLIMITED_MS
    assert options["grpc.max_connection_idle_ms"] == 60 * 60 * 1000
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 5000
    assert options["grpc.http2.max_ping_strikes"] == 2
    custom = replace(
        Settings(),
        max_concurrent_streams=0,
        max_connection_age=0.0,
        max_connection_age_grace=2.5,
        max_connection_idle=0.0,
        min_ping_interval=60.0,
        max_ping_strikes=0,
    ).validate()
    options = dict(server_options(custom))
    assert "grpc.max_concurrent_streams" not in options  # gRPC's own "no limit"
    assert options["grpc.max_connection_age_ms"] == _UNLIMITED_MS
    assert options["grpc.max_connection_age_grace_ms"] == 2500
    assert options["grpc.max_connection_idle_ms"] == _UNLIMITED_MS
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 60_000
    assert options["grpc.http2.max_ping_strikes"] == 0


def _server_sockets(port: int) -> list[dict[str, Any]]:
    """channelz's record of each open connection a server of this process accepted on ``port``."""
    found = []
    for server in json.loads(cygrpc.channelz_get_servers(0)).get("server", []):
        refs = json.loads(cygrpc.channelz_get_server_sockets(int(server["ref"]["serverId"]), 0, 1000))
        for ref in refs.get("socketRef", []):
            socket = json.loads(cygrpc.channelz_get_socket(int(ref["socketId"])))["socket"]
            if socket["local"]["tcpipAddress"]["port"] == port:
                found.append(socket)
    return found


def _streams_started(port: int) -> int:
    (socket,) = _server_sockets(port)  # the test's one connection
    return int(socket["data"].get("streamsStarted", 0))


def _client_streams_started(port: int) -> int:
    """The streams this process's client connection to ``port`` has started (sent to the server)."""
    channels = json.loads(cygrpc.channelz_get_top_channels(0)).get("channel", [])
    for channel in channels:
        if not channel["data"]["target"].endswith(f":{port}"):
            continue
        for sub in channel.get("subchannelRef", []):
            subchannel = json.loads(cygrpc.channelz_get_subchannel(int(sub["subchannelId"])))["subchannel"]
            for ref in subchannel.get("socketRef", []):
                socket = json.loads(cygrpc.channelz_get_socket(int(ref["socketId"])))["socket"]
                return int(socket["data"].get("streamsStarted", 0))
    raise AssertionError(f"no client connection to port {port}")


def _wait_until(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + 30
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_stream_past_the_limit_waits_until_one_ends(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(redis_single.url, max_concurrent_streams=2)
    port = server.app.port if server.app else 0

    async def main() -> None:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = cache_pb2_grpc.CacheServiceStub(channel)
            streams: list[Any] = []

            async def ask(call: Any, request_id: int) -> pb.GetStreamResponse:
                await call.write(pb.GetStreamRequest(request_id=request_id, get=pb.GetRequest(key="k")))
                reply: pb.GetStreamResponse = await call.read()
                assert reply.request_id == request_id
                return reply

            for request_id in (1, 2):  # one after the other: each is running before the next starts
                streams.append(stub.GetStream())
                await ask(streams[-1], request_id)
            streams.append(stub.GetStream())
            third = asyncio.create_task(ask(streams[2], 3))
            # Round trips on the first stream: the connection carries whatever the client sent before
            # them, so a third stream the client had started would have reached the server by now.
            for request_id in range(10, 20):
                await ask(streams[0], request_id)
            # The client holds the third stream back (the server advertised a limit of 2): queued,
            # neither sent nor refused.
            assert _client_streams_started(port) == 2 and _streams_started(port) == 2
            assert not third.done()
            await streams[0].done_writing()
            assert await streams[0].read() == grpc.aio.EOF
            await third  # the first stream ended: the third one starts and is answered
            assert _client_streams_started(port) == 3 and _streams_started(port) == 3
            for call in streams[1:]:
                call.cancel()

    asyncio.run(main())


def test_a_connection_past_its_age_is_replaced(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(redis_single.url, max_connection_age=0.2)
    port = server.app.port if server.app else 0
    seen: set[int] = set()

    with grpc.insecure_channel(server.target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)

        def reconnected() -> bool:
            stub.Get(pb.GetRequest(key="k"))  # every call succeeds, whichever connection it takes
            seen.update(s["remote"]["tcpipAddress"]["port"] for s in _server_sockets(port))
            return len(seen) >= 2

        _wait_until(reconnected, "the client to be moved to a second connection")


def test_a_client_that_pings_too_often_is_disconnected(
    redis_single: RedisProcess, start_coord: Callable[..., CoordThread]
) -> None:
    server = start_coord(redis_single.url, min_ping_interval=60.0, max_ping_strikes=1)
    port = server.app.port if server.app else 0
    eager = [
        ("grpc.keepalive_time_ms", 100),  # far more often than the server's 60 s
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    with grpc.insecure_channel(server.target, options=eager) as channel:
        cache_pb2_grpc.CacheServiceStub(channel).Get(pb.GetRequest(key="k"))
        assert len(_server_sockets(port)) == 1
        # No call is open, so its pings are strikes; past the last one the server closes the connection.
        _wait_until(lambda: not _server_sockets(port), "the server to close the connection")
