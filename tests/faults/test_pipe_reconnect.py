"""The shared pipe (``redis/pipe.py``) never lets a reply reach another caller across a reconnect.

Found by ``test_network_faults.py::test_connection_reset[single]``: while Redis connections were
reset as soon as they opened, a call that had waited for a connection which was lost again before
the call got its turn still queued its reply slot, though its command went nowhere. The next
connection's replies were then handed out one place off: a cache Set got a rate limit's reply, a
Publish a cache version as its event id. Here the same interleaving, made deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.exceptions as rex

from coord_server.redis.pipe import RespPipe

from ..conftest import RedisProcess


def test_a_connection_lost_before_waiting_calls_resume_sends_nothing_into_the_void(
    redis_factory: Callable[..., RedisProcess],
) -> None:
    proc = redis_factory()

    async def scenario() -> None:
        pipe = RespPipe(host="127.0.0.1", port=proc.port, connect_timeout=5.0, stale_after=5.0)
        try:
            assert await pipe.execute([("PING",)], 5.0) == [b"PONG"]
            assert pipe._owner is not None
            pipe._drop(pipe._owner, rex.ConnectionError("reset"))  # the connection is lost

            # Two calls wait for the new connection; it is lost again the moment it is made, before
            # they resume (this callback runs before their wake-ups, which it was added after).
            waiting = [asyncio.create_task(pipe.execute([("ECHO", f"w{i}")], 5.0)) for i in range(2)]
            await asyncio.sleep(0)
            assert pipe._connecting is not None
            pipe._connecting.add_done_callback(
                lambda _: pipe._owner and pipe._drop(pipe._owner, rex.ConnectionError("reset again"))
            )
            results = await asyncio.gather(*waiting, return_exceptions=True)
            assert all(isinstance(r, rex.ConnectionError) for r in results), results
            assert not pipe._waiting  # no reply slot is left without its command

            # The next calls, on a fresh connection, get their own replies.
            replies = await asyncio.gather(*(pipe.execute([("ECHO", f"m{i}")], 5.0) for i in range(5)))
            assert replies == [[f"m{i}".encode()] for i in range(5)]
        finally:
            await pipe.aclose()

    asyncio.run(scenario())
