"""The gRPC floor: a bare ``grpc.aio`` unary echo server, the fastest any Coord RPC could possibly be.

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
FLOOR_NAME = "gRPC echo floor"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request


async def _serve(listen: str) -> None:
    from coord_server.app import server_options
    from coord_server.config import Settings

    server = grpc.aio.server(options=server_options(Settings()))
    # No (de)serializers: the handler receives and returns raw bytes.
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
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
