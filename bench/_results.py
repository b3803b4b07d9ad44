"""``docs/benchmark-results.md``: one run's rows as a page, written by ``python -m bench --write-docs``.

The page is the only place that holds benchmark figures; ``docs/benchmarks.md`` explains them and
names the goals, and the README quotes a few ratios with a link here. It is rewritten whole from a
run's rows (never merged with an earlier run): when it was made, on what machine, with what plan, how
each goal fared, and the table the run printed.
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from ._harness import Plan, Row, table

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmark-results.md"
GENERATED_BY = "make bench BENCH_ARGS=--write-docs"


@dataclass(frozen=True)
class Machine:
    """What the figures depend on besides the code: cores, platform and the versions under test."""

    cpus: int
    system: str
    python: str
    grpcio: str
    redis: str

    @classmethod
    def here(cls, redis_version: str) -> Machine:
        """This machine, with the version of the redis-server the run started."""
        return cls(
            cpus=os.cpu_count() or 0,
            system=f"{platform.system()} {platform.machine()}",
            python=platform.python_version(),
            grpcio=grpc.__version__,
            redis=redis_version,
        )


@dataclass(frozen=True)
class RunInfo:
    """Everything about a run but its rows."""

    started: datetime.datetime  # UTC
    seconds: float  # wall-clock length of the whole run
    machine: Machine
    plan: Plan
    quick: bool
    command: str  # how the run was started, for example ``python -m bench --quick --write-docs``
    only: tuple[str, ...] = ()  # the --only selections; empty for every benchmark
    failed: tuple[str, ...] = ()  # benchmarks that raised (their rows are missing)

    def describe(self) -> str:
        """The one line the run prints above its table."""
        m, p = self.machine, self.plan
        return (
            f"{_when(self.started)}; {m.cpus} CPUs, {m.system}; Python {m.python}, grpcio {m.grpcio}, "
            f"Redis {m.redis}; {p.rounds} rounds x {p.duration:g}s per side, "
            f"concurrency {', '.join(map(str, p.concurrency))}"
        )


@dataclass(frozen=True)
class Goal:
    """A goal of docs/benchmarks.md, checked on the rows whose operation and baseline start as given.

    A goal is met when every matching row's ratio (Coord ÷ baseline) lies on the right side of its
    bound: ``at_least`` for rates (higher is better), ``at_most`` for costs and latencies.
    """

    text: str
    operations: tuple[str, ...]
    baseline: str
    at_least: float | None = None
    at_most: float | None = None
    concurrency: int | None = None  # only the rows at this level; None for every level

    def rows(self, rows: Sequence[Row]) -> list[Row]:
        return [
            r
            for r in rows
            if r.operation.startswith(self.operations)
            and r.baseline_name.startswith(self.baseline)
            and (self.concurrency is None or r.concurrency == self.concurrency)
        ]

    def holds(self, row: Row) -> bool:
        if self.at_least is not None and row.ratio < self.at_least:
            return False
        return self.at_most is None or row.ratio <= self.at_most


# The goals of docs/benchmarks.md#goals that a ratio decides (the others ask only for a figure).
GOALS = (
    Goal(
        "Coord unary ≥ 0.7x the gRPC echo floor",
        ("cache.Get", "cache.Set", "ratelimit.Check (GCRA"),
        "gRPC echo floor",
        at_least=0.7,
    ),
    Goal(
        "TLS + API-key authentication cost ≤ 10% of cache.Get throughput at c=64 (≥ 0.90x insecure)",
        ("cache.Get (hit, 100 B) over TLS + API key",),
        "Coord insecure",
        at_least=0.9,
        concurrency=64,
    ),
    Goal(
        "Rate-limit checks through the best API ≥ 1.0x redis-py running check.lua, c=64",
        ("ratelimit checks via AsyncClient.limit",),
        "redis-py EVALSHA check.lua",
        at_least=1.0,
        concurrency=64,
    ),
    Goal(
        "Added p50 at c=1 over direct redis-py ≤ 0.4 ms",
        ("Coord's added p50",),
        "goal 0.4 ms",
        at_most=1.0,
    ),
    Goal(
        "Lock: more acquire+release pairs/s than redis-py's Lock, 8 callers on one lock",
        ("lock pairs on ONE lock (blocking acquire)",),
        "redis-py asyncio Lock",
        at_least=1.0,
        concurrency=8,
    ),
    Goal(
        "Lock: hand-off latency ≥ 10x lower than redis-py's Lock (its default 0.1 s poll)",
        ("lock hand-off",),
        "redis-py asyncio Lock (sleep 0.1)",
        at_most=0.1,
    ),
    Goal(
        "Rate limit: a 3-rule check through the batched client costs Redis ≤ `limits` doing them one by one",
        ("ratelimit 3 rules, batched client: Redis CPU per check",),
        "limits",
        at_most=1.0,
    ),
    Goal(
        "Events fan-out to 100 ≥ 0.5x Pub/Sub",
        ("events fan-out to 100",),
        "redis-py Pub/Sub",
        at_least=0.5,
    ),
    Goal(
        "Collections: each common operation ≥ 0.7x the gRPC echo floor (as the cache)",
        ("map.", "list.", "set.", "sorted_set."),
        "gRPC echo floor",
        at_least=0.7,
    ),
    Goal(
        "Cache: Redis memory per entry ≤ 1.25x a plain SET PX, 100 B values",
        ("cache memory per entry (100 B)",),
        "redis-py SET PX",
        at_most=1.25,
    ),
    Goal(
        "Cache: Redis memory per entry ≤ 1.05x a plain SET PX, 4 KiB values",
        ("cache memory per entry (4 KiB)",),
        "redis-py SET PX",
        at_most=1.05,
    ),
    Goal(
        "Cache: near-cache hot reads ≥ 10x redis-py GET, 1% writes by another client",
        ("cache near-cache reads",),
        "redis-py GET",
        at_least=10.0,
    ),
    Goal(
        "Collections: Redis memory ≤ 1.2x the plain structure, 100+ elements",
        ("map memory", "list memory", "set memory", "sorted_set memory"),
        "plain",
        at_most=1.2,
    ),
)


def _when(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _plan_text(run: RunInfo) -> str:
    p = run.plan
    kind = "quick" if run.quick else "full"
    return (
        f"{kind}: {p.rounds} round{'s' if p.rounds != 1 else ''} of {p.duration:g} s per side after a "
        f"{p.warmup:g} s warm-up, "
        f"concurrency {', '.join(map(str, p.concurrency))}; {p.memory_keys:,} keys for the memory rows"
    )


def _goal_cells(goal: Goal, rows: Sequence[Row]) -> tuple[str, str]:
    matched = goal.rows(rows)
    if not matched:
        return "not measured in this run", "-"
    figures = "; ".join(
        f"{r.operation}{'' if r.concurrency is None else f' c={r.concurrency}'} vs {r.baseline_name}: "
        f"{r.ratio:.2f}x"
        for r in matched
    )
    missed = sum(1 for r in matched if not goal.holds(r))
    verdict = "yes" if not missed else f"no ({missed} of {len(matched)} rows)"
    return figures, verdict


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def render(run: RunInfo, rows: Sequence[Row]) -> str:
    """The whole page for ``rows`` of ``run``, as Markdown."""
    minutes = run.seconds / 60
    length = f"{minutes:.0f} min" if minutes >= 1 else f"{run.seconds:.0f} s"
    m = run.machine
    facts = [
        ("date", f"{_when(run.started)} ({length} in all)"),
        ("machine", f"{m.cpus} CPUs, {m.system}"),
        ("software", f"Python {m.python}, grpcio {m.grpcio}, Redis {m.redis}"),
        ("plan", _plan_text(run)),
        ("command", f"`{run.command}`"),
        ("benchmarks", "every one" if not run.only else "only " + ", ".join(f"`{n}`" for n in run.only)),
        ("failed", ", ".join(f"`{n}`" for n in run.failed) if run.failed else "none"),
    ]
    lines = [
        "# Benchmark results",
        "",
        f"<!-- Generated by `{GENERATED_BY}` (bench/_results.py) from one run's rows; "
        "a new run replaces the whole page. Do not edit by hand. -->",
        "",
        "The figures of one `make bench` run. What each row measures, the baselines, the levers and the",
        "goals: [benchmarks.md](benchmarks.md). Read the ratios and the CPU µs/op rather than the absolute",
        "ops/s: the load generator, Redis and the servers under test share the machine, and interleaved",
        "rounds keep the sides of a row comparable while absolute figures move from run to run.",
        "",
        "| run | |",
        "|---|---|",
        *(f"| {name} | {_escape(value)} |" for name, value in facts),
        "",
        "## Goals",
        "",
        "Each goal of [benchmarks.md](benchmarks.md#goals) that a ratio decides, on this run's rows.",
        "",
        "| goal | rows (ratio = Coord ÷ baseline) | met |",
        "|---|---|---|",
    ]
    for goal in GOALS:
        figures, verdict = _goal_cells(goal, rows)
        lines.append(f"| {_escape(goal.text)} | {_escape(figures)} | {verdict} |")
    lines += [
        "",
        "## Rows",
        "",
        "Columns: [benchmarks.md](benchmarks.md#columns). Every figure is the median over the rounds.",
        "",
        table(rows) if rows else "(no rows: every selected benchmark failed)",
        "",
    ]
    return "\n".join(lines)


def write(run: RunInfo, rows: Sequence[Row], path: Path = DOCS) -> None:
    """Write the page for ``rows`` to ``path`` (docs/benchmark-results.md unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(run, rows), encoding="utf-8")
