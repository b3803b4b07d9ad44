"""Stampede: 64 callers miss one key at the same moment and ask ``get_or_set`` for it.

With fill leases (``get_or_set``'s default) one caller runs the fill and the other 63 wait on the
server for its value; without them (``lease=False``: a plain read, then an if-absent write, the
behaviour before leases) every caller runs the fill. The fill stands for a 50 ms database query.

Rows: the fills one stampede runs (goal: exactly 1), and the callers' latency p50/p99 (each caller's
whole ``get_or_set``), both sides through the same four ``AsyncClient`` connections, stampedes
alternating between the sides. About ten seconds in all.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

from coord_client import AsyncClient

from ._harness import Benchmark, Env, Row, Stats, progress

CALLERS = 64
CLIENTS = 4  # connections the callers share, as four processes would have
FILL_SECONDS = 0.05
STAMPEDES = 15  # per side
TTL = 60.0


class _Stampede:
    """One side: how it calls get_or_set, and what its stampedes measured."""

    def __init__(self, name: str, lease: bool) -> None:
        self.name = name
        self.lease = lease
        self.fills: list[int] = []
        self.latencies_ns: list[int] = []  # every caller's
        self.waiters_ns: list[int] = []  # the callers that did not run the fill themselves

    async def run(self, clients: list[AsyncClient], key: str) -> None:
        filled = 0

        async def caller(client: AsyncClient) -> None:
            ran = False

            async def fill() -> bytes:
                nonlocal filled, ran
                filled += 1
                ran = True
                await asyncio.sleep(FILL_SECONDS)
                return b"x" * 100

            began = time.perf_counter_ns()
            await client.cache.get_or_set(key, fill, TTL, lease=self.lease, lease_ttl=10.0, wait=10.0)
            took = time.perf_counter_ns() - began
            self.latencies_ns.append(took)
            if not ran:
                self.waiters_ns.append(took)

        await asyncio.gather(*(caller(clients[i % CLIENTS]) for i in range(CALLERS)))
        self.fills.append(filled)

    def stats(self) -> Stats:
        return Stats(0.0, _ms(self.latencies_ns, 0.50), _ms(self.latencies_ns, 0.99), None, 0.0)


def _ms(samples_ns: list[int], q: float) -> float:
    if not samples_ns:
        return 0.0
    ordered = sorted(samples_ns)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


async def bench_stampede(env: Env) -> list[Row]:
    leased = _Stampede("get_or_set with fill leases", lease=True)
    plain = _Stampede("get_or_set without leases", lease=False)
    clients = [AsyncClient(env.coord_target) for _ in range(CLIENTS)]
    try:
        for client in clients:
            await client.cache.get("warm-up")
        keys = (f"bench:stampede:{i}" for i in itertools.count())
        for i in range(STAMPEDES):
            for side in (leased, plain) if i % 2 == 0 else (plain, leased):
                await side.run(clients, next(keys))
    finally:
        for client in clients:
            await client.close()
    mine, theirs = leased.stats(), plain.stats()
    waiters = {"p50": _ms(leased.waiters_ns, 0.50), "p99": _ms(leased.waiters_ns, 0.99)}
    progress(
        f"stampede of {CALLERS}: fills {statistics.median(leased.fills):g} with leases, "
        f"{statistics.median(plain.fills):g} without; p99 {mine.p99_ms:.1f} ms vs {theirs.p99_ms:.1f} ms; "
        f"waiters p50/p99 {waiters['p50']:.1f}/{waiters['p99']:.1f} ms"
    )
    extra = {"fills_max": max(leased.fills), "baseline_fills_max": max(plain.fills)}
    waited = {"waiters_p50_ms": round(waiters["p50"], 3), "waiters_p99_ms": round(waiters["p99"], 3)}
    return [
        Row(
            f"cache.get_or_set stampede: fills per {CALLERS} misses",
            plain.name,
            "fills",
            statistics.median(leased.fills),
            statistics.median(plain.fills),
            CALLERS,
            extra=extra,
        ),
        Row(
            f"cache.get_or_set stampede: caller latency ({FILL_SECONDS * 1000:g} ms fill)",
            plain.name,
            "ms p50",
            mine.p50_ms,
            theirs.p50_ms,
            CALLERS,
            mine,
            theirs,
            extra=waited,
        ),
    ]


BENCHMARKS = (Benchmark("cache.stampede", bench_stampede),)
