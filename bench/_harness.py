"""The harness every benchmark shares: closed-loop load, interleaved rounds, the table and the JSON.

A *side* is one way of doing an operation (through Coord, or a baseline) as an async callable. A
comparison runs K concurrent workers calling a side for a fixed time (a *round*), alternating Coord
and each baseline round by round (A B C, C B A, A B C, ...), so that noise from other work on the
machine lands on every side alike. Each figure reported is the median over the rounds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
import redis.asyncio as aioredis

# One operation; the argument is a sequence number the side may use to pick a key.
Op = Callable[[int], Awaitable[None]]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (Coord's server uses it too), else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


@dataclass(frozen=True)
class Side:
    """One way to perform an operation. ``server_pid`` is the process whose CPU time it is charged."""

    name: str
    op: Op
    server_pid: int | None = None


@dataclass(frozen=True)
class Plan:
    """How long and how hard to measure."""

    duration: float  # seconds per round
    rounds: int  # rounds per side
    concurrency: tuple[int, ...]
    warmup: float  # seconds per side, discarded, before the first round


@dataclass
class Env:
    """What a benchmark gets: the plan, the processes under test and open connections to them."""

    plan: Plan
    coord: grpc.aio.Channel
    coord_pid: int
    floor: grpc.aio.Channel
    floor_pid: int
    redis: aioredis.Redis
    redis_pid: int
    redis_url: str = ""
    coord_target: str = ""
    # Starts one more Coord server (a variant: other flags or settings) for the rest of the run and
    # returns (pid, target, channel): see bench.levers.
    spawn_coord: Callable[..., Awaitable[tuple[int, str, grpc.aio.Channel]]] | None = None


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark (``<service>.<operation>``); ``--only`` selects by this name or its prefix."""

    name: str
    run: Callable[[Env], Awaitable[list[Row]]]


@dataclass(frozen=True)
class Round:
    ops: int
    seconds: float
    latencies_ns: list[int]
    cpu_seconds: float | None  # of the side's server process
    client_cpu_seconds: float  # of this (load-generating) process

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Stats:
    """Medians over the rounds of one side."""

    ops_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_op: float | None
    client_cpu_us_per_op: float

    @classmethod
    def of(cls, rounds: Sequence[Round]) -> Stats:
        cpu = [r.cpu_seconds * 1e6 / r.ops for r in rounds if r.cpu_seconds is not None and r.ops]
        return cls(
            ops_per_s=statistics.median(r.ops_per_s for r in rounds),
            p50_ms=statistics.median(_percentile(r.latencies_ns, 0.50) for r in rounds) / 1e6,
            p99_ms=statistics.median(_percentile(r.latencies_ns, 0.99) for r in rounds) / 1e6,
            cpu_us_per_op=statistics.median(cpu) if cpu else None,
            client_cpu_us_per_op=statistics.median(
                r.client_cpu_seconds * 1e6 / max(r.ops, 1) for r in rounds
            ),
        )


def _percentile(samples: list[int], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


@dataclass(frozen=True)
class Row:
    """One line of the table: Coord against one baseline for one operation."""

    operation: str
    baseline_name: str
    unit: str
    coord: float
    baseline: float
    concurrency: int | None = None
    coord_stats: Stats | None = None
    baseline_stats: Stats | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Coord over baseline: above 1 is better for ops/s, below 1 is better for bytes/key."""
        return self.coord / self.baseline if self.baseline else 0.0

    @property
    def name(self) -> str:
        conc = f" c={self.concurrency}" if self.concurrency is not None else ""
        return f"{self.operation}{conc} vs {self.baseline_name}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "coord": round(self.coord, 1),
            "baseline": round(self.baseline, 1),
            "unit": self.unit,
            "ratio": round(self.ratio, 3),
            "operation": self.operation,
            "baseline_name": self.baseline_name,
            "concurrency": self.concurrency,
        }
        for prefix, stats in (("coord", self.coord_stats), ("baseline", self.baseline_stats)):
            if stats is not None:
                out[f"{prefix}_p50_ms"] = round(stats.p50_ms, 3)
                out[f"{prefix}_p99_ms"] = round(stats.p99_ms, 3)
                out[f"{prefix}_cpu_us_per_op"] = _round(stats.cpu_us_per_op)
                out[f"{prefix}_client_cpu_us_per_op"] = _round(stats.client_cpu_us_per_op)
        if self.coord_stats is not None:
            out["cpu_us_per_op"] = _round(self.coord_stats.cpu_us_per_op)
        return out | self.extra


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- measuring -------------------------------------------------------------------------------------


class _Cpu:
    """CPU time (user + system) of one process, read with psutil."""

    def __init__(self, pid: int | None) -> None:
        self._proc = psutil.Process(pid) if pid is not None else None
        # A supervisor's workers (``--workers N``) count as its own CPU.
        self._children = self._proc.children(recursive=True) if self._proc is not None else []

    def seconds(self) -> float | None:
        if self._proc is None:
            return None
        total = 0.0
        for proc in (self._proc, *self._children):
            times = proc.cpu_times()
            total += times.user + times.system
        return total


async def run_round(side: Side, concurrency: int, duration: float) -> Round:
    """``concurrency`` workers call ``side.op`` back to back for ``duration`` seconds."""
    latencies: list[int] = []
    counter = itertools.count()
    cpu = _Cpu(side.server_pid)
    me = _Cpu(os.getpid())
    clock = time.perf_counter_ns
    start_cpu = cpu.seconds()
    my_start = me.seconds() or 0.0
    start = time.perf_counter()
    stop = start + duration

    async def worker() -> None:
        op = side.op
        while time.perf_counter() < stop:
            began = clock()
            await op(next(counter))
            latencies.append(clock() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    end_cpu = cpu.seconds()
    used = None if start_cpu is None or end_cpu is None else end_cpu - start_cpu
    return Round(len(latencies), seconds, latencies, used, (me.seconds() or 0.0) - my_start)


async def compare(env: Env, operation: str, coord: Side, baselines: Sequence[Side]) -> list[Row]:
    """Coord against each baseline at every concurrency level of the plan, rounds interleaved."""
    plan = env.plan
    sides = [coord, *baselines]
    rows: list[Row] = []
    for concurrency in plan.concurrency:
        for side in sides:
            await run_round(side, concurrency, plan.warmup)
        rounds: dict[str, list[Round]] = {side.name: [] for side in sides}
        for i in range(plan.rounds):
            for side in sides if i % 2 == 0 else reversed(sides):
                rounds[side.name].append(await run_round(side, concurrency, plan.duration))
        stats = {name: Stats.of(rs) for name, rs in rounds.items()}
        mine = stats[coord.name]
        progress(
            f"{operation} c={concurrency}: "
            + ", ".join(f"{n} {s.ops_per_s:,.0f}/s" for n, s in stats.items())
        )
        rows.extend(
            Row(
                operation,
                b.name,
                "ops/s",
                mine.ops_per_s,
                stats[b.name].ops_per_s,
                concurrency,
                mine,
                stats[b.name],
            )
            for b in baselines
        )
    return rows


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# -- reporting -------------------------------------------------------------------------------------

HEADER = (
    "operation",
    "conc",
    "Coord",
    "baseline",
    "baseline name",
    "ratio",
    "Coord p50/p99 ms",
    "baseline p50/p99 ms",
    "Coord CPU µs/op",
    "baseline CPU µs/op",
)


def _cells(row: Row) -> tuple[str, ...]:
    def amount(value: float) -> str:
        return f"{value:,.0f} {row.unit}"

    def latency(stats: Stats | None) -> str:
        return "-" if stats is None else f"{stats.p50_ms:.2f} / {stats.p99_ms:.2f}"

    def cpu(stats: Stats | None) -> str:
        return "-" if stats is None or stats.cpu_us_per_op is None else f"{stats.cpu_us_per_op:.0f}"

    return (
        row.operation,
        "-" if row.concurrency is None else str(row.concurrency),
        amount(row.coord),
        amount(row.baseline),
        row.baseline_name,
        f"{row.ratio:.2f}x",
        latency(row.coord_stats),
        latency(row.baseline_stats),
        cpu(row.coord_stats),
        cpu(row.baseline_stats),
    )


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, padded so it also reads well in a terminal."""
    lines = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    right = {2, 3, 5, 8, 9}

    def fmt(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([fmt(HEADER), rule, *(fmt(cells) for cells in lines[1:])])


def write_json(rows: Sequence[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_json() for r in rows], indent=2) + "\n", encoding="utf-8")
