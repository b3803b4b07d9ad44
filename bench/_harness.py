"""The harness every benchmark shares: closed-loop load, interleaved rounds, the table and the JSON.

A *side* is one way of doing an operation (through Coord, or a baseline) as an async callable. A
comparison runs K concurrent workers calling a side for a fixed time (a *round*), alternating Coord
and each baseline round by round (A B C, C B A, A B C, ...), so that noise from other work on the
machine lands on every side alike. Each figure reported is the median over the rounds.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
# Takes (and forgets) the latencies a side measured on its own since the last call, in nanoseconds.
Drain = Callable[[], list[int]]


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
    """One way to perform an operation. ``server_pid`` is the process whose CPU time it is charged.

    ``redis_pid``, when set, is also measured, so that the Redis time of a call through Coord can be
    set against a baseline's. ``samples``, when set, drains a second latency the side measures itself
    (a lock hand-off, an event's delivery): it is drained when a round starts and when it ends.
    """

    name: str
    op: Op
    server_pid: int | None = None
    redis_pid: int | None = None
    samples: Drain | None = None


@dataclass(frozen=True)
class Plan:
    """How long and how hard to measure."""

    duration: float  # seconds per round
    rounds: int  # rounds per side
    concurrency: tuple[int, ...]
    warmup: float  # seconds per side, discarded, before the first round
    memory_keys: int = 10_000  # keys (locks, sessions) the memory benchmarks write per side


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
    floor_target: str = ""


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
    redis_cpu_seconds: float | None = None  # of redis-server, when the side names it
    samples_ns: list[int] = field(default_factory=list)  # the side's own second latency

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
    redis_cpu_us_per_op: float | None = None
    sample_p50_ms: float | None = None  # of the side's own second latency, when it has one
    sample_p99_ms: float | None = None

    @classmethod
    def of(cls, rounds: Sequence[Round]) -> Stats:
        cpu = [r.cpu_seconds * 1e6 / r.ops for r in rounds if r.cpu_seconds is not None and r.ops]
        redis_cpu = [
            r.redis_cpu_seconds * 1e6 / r.ops for r in rounds if r.redis_cpu_seconds is not None and r.ops
        ]
        sampled = [r.samples_ns for r in rounds if r.samples_ns]
        return cls(
            ops_per_s=statistics.median(r.ops_per_s for r in rounds),
            p50_ms=statistics.median(_percentile(r.latencies_ns, 0.50) for r in rounds) / 1e6,
            p99_ms=statistics.median(_percentile(r.latencies_ns, 0.99) for r in rounds) / 1e6,
            cpu_us_per_op=statistics.median(cpu) if cpu else None,
            client_cpu_us_per_op=statistics.median(
                r.client_cpu_seconds * 1e6 / max(r.ops, 1) for r in rounds
            ),
            redis_cpu_us_per_op=statistics.median(redis_cpu) if redis_cpu else None,
            sample_p50_ms=statistics.median(_percentile(s, 0.50) for s in sampled) / 1e6 if sampled else None,
            sample_p99_ms=statistics.median(_percentile(s, 0.99) for s in sampled) / 1e6 if sampled else None,
        )

    def as_latency(self) -> Stats:
        """These stats with the side's own latency in the p50/p99 place (and no rate or CPU)."""
        return Stats(0.0, self.sample_p50_ms or 0.0, self.sample_p99_ms or 0.0, None, 0.0)


def _figure(value: float) -> float:
    """A figure for the JSON: small ones (ms, µs) keep three decimals, rates and sizes one."""
    return round(value, 3) if abs(value) < 100 else round(value, 1)


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
        """Coord over baseline: above 1 is better for ops/s; below 1 for bytes/key, ms and µs."""
        return self.coord / self.baseline if self.baseline else 0.0

    @property
    def name(self) -> str:
        conc = f" c={self.concurrency}" if self.concurrency is not None else ""
        return f"{self.operation}{conc} vs {self.baseline_name}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "coord": _figure(self.coord),
            "baseline": _figure(self.baseline),
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
                if stats.redis_cpu_us_per_op is not None:
                    out[f"{prefix}_redis_cpu_us_per_op"] = _round(stats.redis_cpu_us_per_op)
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


class _SchedCpu:
    """CPU time of one process to the nanosecond: the sum of its threads' ``/proc/<pid>/task/*/schedstat``.

    psutil's figures come in 10 ms clock ticks, too coarse for redis-server's share of a short round
    (a few tens of ms). A thread that ends during the round takes its time with it, which is fine for
    redis-server (its threads live as long as it does). Falls back to psutil where there is no procfs.
    """

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._fallback = _Cpu(pid)

    def seconds(self) -> float | None:
        if self._pid is None:
            return None
        try:
            total = 0
            for task in Path(f"/proc/{self._pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            return self._fallback.seconds()
        return total / 1e9


def paced(side: Side, rate: float) -> Side:
    """``side`` with its calls started at ``rate`` per second over all workers (never in bursts).

    Closed-loop sides run at different speeds, and a server's CPU per call depends on how busy it is;
    pacing every side to one rate compares CPU per call at equal load.
    """
    interval = 1.0 / rate
    next_at = 0.0
    op = side.op

    async def paced_op(i: int) -> None:
        nonlocal next_at
        now = time.perf_counter()
        at = max(next_at, now)
        next_at = at + interval
        if at > now:
            await asyncio.sleep(at - now)
        await op(i)

    return dataclasses.replace(side, op=paced_op)


async def run_round(side: Side, concurrency: int, duration: float) -> Round:
    """``concurrency`` workers call ``side.op`` back to back for ``duration`` seconds."""
    latencies: list[int] = []
    counter = itertools.count()
    cpu = _Cpu(side.server_pid)
    redis_cpu = _SchedCpu(side.redis_pid)
    me = _Cpu(os.getpid())
    clock = time.perf_counter_ns
    if side.samples is not None:
        side.samples()  # what earlier rounds left behind
    start_cpu = cpu.seconds()
    redis_start = redis_cpu.seconds()
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
    redis_end = redis_cpu.seconds()
    my_used = (me.seconds() or 0.0) - my_start
    used = None if start_cpu is None or end_cpu is None else end_cpu - start_cpu
    redis_used = None if redis_start is None or redis_end is None else redis_end - redis_start
    samples = side.samples() if side.samples is not None else []
    return Round(len(latencies), seconds, latencies, used, my_used, redis_used, samples)


async def compare(
    env: Env,
    operation: str,
    coord: Side,
    baselines: Sequence[Side],
    levels: Sequence[int] | None = None,
) -> list[Row]:
    """Coord against each baseline at every concurrency level, rounds interleaved.

    ``levels`` replaces the plan's concurrency levels for a benchmark whose load is part of what it
    measures (eight clients contending for one lock).
    """
    plan = env.plan
    sides = [coord, *baselines]
    rows: list[Row] = []
    for concurrency in levels or plan.concurrency:
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


def redis_cpu_rows(rows: Sequence[Row], operation: str, unit: str) -> list[Row]:
    """For rows whose sides name ``redis_pid``: Redis CPU per operation, Coord against each baseline."""
    out = []
    for row in rows:
        mine = row.coord_stats.redis_cpu_us_per_op if row.coord_stats else None
        theirs = row.baseline_stats.redis_cpu_us_per_op if row.baseline_stats else None
        if mine is not None and theirs is not None:
            rates = {"coord_ops_per_s": round(row.coord, 1), "baseline_ops_per_s": round(row.baseline, 1)}
            out.append(Row(operation, row.baseline_name, unit, mine, theirs, row.concurrency, extra=rates))
    return out


def sample_rows(rows: Sequence[Row], operation: str) -> list[Row]:
    """For rows whose sides measure their own latency: its p50 (the figure) and p99, in ms."""
    out = []
    for row in rows:
        mine, theirs = row.coord_stats, row.baseline_stats
        if mine is None or theirs is None or mine.sample_p50_ms is None or theirs.sample_p50_ms is None:
            continue
        out.append(
            Row(
                operation,
                row.baseline_name,
                "ms p50",
                mine.sample_p50_ms,
                theirs.sample_p50_ms,
                row.concurrency,
                mine.as_latency(),
                theirs.as_latency(),
            )
        )
    return out


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
        digits = 2 if value < 10 else 1 if value < 100 else 0
        return f"{value:,.{digits}f} {row.unit}"

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
