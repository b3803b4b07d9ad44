"""The gRPC floor: a bare ``grpc.aio`` unary echo server, the fastest any Coord RPC could possibly be,
and a bare fan-out (``Post`` hands the request bytes to every open ``Watch`` stream), the fastest any
delivery to N server streams could be.

It runs in its own process (``python -m bench.floor --listen 127.0.0.1:<port>``) on the same event loop
(uvloop) and server options as Coord, with a generic handler that returns the request bytes unchanged:
no protobuf, no validation, no Redis. Coord's throughput divided by this one is the share of the bare
gRPC machinery that Coord keeps; the rest is Coord's own cost (protobuf, validation, Redis round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc

from ._harness import Op, Side

SERVICE = "coord.bench.v1.EchoService"
ECHO_METHOD = f"/{SERVICE}/Echo"
POST_METHOD = f"/{SERVICE}/Post"
WATCH_METHOD = f"/{SERVICE}/Watch"
FLOOR_NAME = "gRPC echo floor"
FANOUT_FLOOR_NAME = "gRPC stream fan-out floor"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request


class _Fan:
    """Every open Watch stream's queue; Post puts its bytes on each (no protobuf, no Redis)."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[bytes]] = set()

    async def post(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        for queue in self.queues:
            queue.put_nowait(request)
        return b""

    async def watch(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield b"ready"
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)


async def _serve(listen: str) -> None:
    from coord_server.app import server_options
    from coord_server.config import Settings

    server = grpc.aio.server(options=server_options(Settings()))
    # No (de)serializers: the handler receives and returns raw bytes.
    fan = _Fan()
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
            "Post": grpc.unary_unary_rpc_method_handler(fan.post),
            "Watch": grpc.unary_stream_rpc_method_handler(fan.watch),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def echo_side(channel: grpc.aio.Channel, payload: bytes, pid: int) -> Side:
    """A baseline side that sends ``payload`` through the echo floor and gets it back."""
    call = channel.unary_unary(ECHO_METHOD, None, None)

    async def op(_: int) -> None:
        await call(payload)

    echo: Op = op
    return Side(FLOOR_NAME, echo, pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="host:port to serve on")
    args = parser.parse_args()
    from ._harness import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(args.listen))


if __name__ == "__main__":
    main()
