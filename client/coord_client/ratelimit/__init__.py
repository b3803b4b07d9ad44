"""The RateLimit service: :class:`RateLimitAPI` (sync) and :class:`AsyncRateLimitAPI` (asyncio).

Both build requests and read decisions with ``_codec``; only the sending differs, and the asyncio
client batches concurrent checks (``batching``). A denial is a :class:`Decision` with ``allowed``
False (it is falsy), not an exception; the ``limited`` form raises :class:`RateLimited` instead.
Times are seconds (``float``).

    with Client() as client:
        decision = client.limit("user:42", rate="100/m", burst=20)
        if not decision:
            print("retry in", decision.retry_after, "s")

        with client.ratelimit.limited("login:alice", rate="5/15m", algorithm="fixed_window"):
            ...                                   # raises RateLimited(retry_after=...) when denied

        @client.ratelimit.limited("user:{user_id}", rate="10/s")
        def handle(user_id: int) -> None: ...

        client.ratelimit.check(                   # several limits, decided atomically
            Limit("user:42", rate="10/s"), Limit("org:7", rate="1000/m"), scope="org:7"
        )

The package: ``models`` (a Limit in, a Decision out), ``_codec`` (requests and decisions, shared),
``sync`` and ``aio`` (the two APIs), ``_limited`` (what both ``limited`` forms share), ``batching``
(the asyncio client's batches of checks).
"""

from ._codec import ALGORITHMS, SERVICE, parse_rate
from .aio import AsyncLimited, AsyncRateLimitAPI
from .batching import BATCHES_IN_FLIGHT, _CheckBatcher
from .models import Decision, Limit, LimitStatus, RateLimited
from .sync import Limited, RateLimitAPI

__all__ = [
    "ALGORITHMS",
    "BATCHES_IN_FLIGHT",
    "SERVICE",
    "AsyncLimited",
    "AsyncRateLimitAPI",
    "Decision",
    "Limit",
    "LimitStatus",
    "Limited",
    "RateLimitAPI",
    "RateLimited",
    "_CheckBatcher",
    "parse_rate",
]
