"""The soak test's samples, its table and its verdict; no I/O, so it is tested on made-up series.

A :class:`Sample` is what one interval of ``python -m bench.soak`` measured. The verdict compares the
samples after the warm-up: the **baseline** is the median of their first third, the **end** the median
of their last third (medians of several samples, so that one noisy interval decides nothing), and a
metric fails when the end is beyond the baseline by more than its :class:`Margin`. A slope (least
squares over every sample after the warm-up, per hour) is reported beside each metric as well, to
show a slow trend that stays inside the margin.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

MIB = 1 << 20


@dataclass(frozen=True)
class Sample:
    """One interval of the soak: the load's figures for that interval and the gauges at its end."""

    index: int  # 1-based
    seconds: float  # since the load started, at the end of the interval
    ops: int  # client calls completed in the interval
    errors: int  # client calls that failed unexpectedly in the interval
    p50_ms: float  # latency of the interval's calls (blocking lock waits left out)
    p99_ms: float
    server_rss_mib: float  # the Coord server process alone (VmRSS)
    server_fds: int  # its open file descriptors (/proc/<pid>/fd)
    server_cpu_us_per_op: float  # its CPU time (user + system) in the interval, per call
    redis_used_mib: float  # INFO memory used_memory
    redis_clients: int  # INFO clients connected_clients
    keys: int  # DBSIZE
    client_rss_mib: float  # the load generator itself (this process), to tell its growth apart
    interval_s: float = 0.0  # length of the interval
    behind: int = 0  # calls the pacer could not start on time (in-flight cap reached), not sent
    load_avg: float = 0.0  # the machine's 1-minute load average: latency on a busy machine is noisy
    lag_p99_ms: float = 0.0  # p99 of how late this process's event loop woke from a 10 ms sleep
    extra: dict[str, Any] = field(default_factory=dict)  # further gauges, for the JSON only

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.interval_s if self.interval_s else 0.0


@dataclass(frozen=True)
class Margin:
    """How far a metric may move from its baseline: ``relative`` times the baseline or ``absolute``, the
    larger. ``grows`` is the direction that fails (False: a drop fails, as for the call rate)."""

    metric: str
    label: str
    unit: str
    relative: float
    absolute: float
    grows: bool = True

    def allowance(self, base: float) -> float:
        return max(abs(base) * self.relative, self.absolute)

    def describe(self) -> str:
        sign = "+" if self.grows else "-"
        parts = []
        if self.relative:
            parts.append(f"{sign}{self.relative * 100:.0f}%")
        if self.absolute:
            parts.append(f"{sign}{_num(self.absolute)} {self.unit}")
        return " or ".join(parts) + (", whichever is larger" if len(parts) == 2 else "")


# The margins, chosen for a 2-core machine shared with other work: latency moves with the machine's
# load (hence the wide factor and the floor), memory figures are steady once the warm-up is over.
MARGINS: tuple[Margin, ...] = (
    Margin("ops_per_s", "call rate", "calls/s", 0.10, 0.0, grows=False),
    Margin("p50_ms", "client p50", "ms", 1.0, 2.0),
    Margin("p99_ms", "client p99", "ms", 1.0, 5.0),
    Margin("server_cpu_us_per_op", "server CPU per call", "µs", 0.50, 50.0),
    Margin("server_rss_mib", "server RSS", "MiB", 0.20, 16.0),
    Margin("server_fds", "server open fds", "fds", 0.0, 10.0),
    Margin("redis_used_mib", "Redis used_memory", "MiB", 0.20, 4.0),
    Margin("redis_clients", "Redis connected_clients", "clients", 0.0, 5.0),
    Margin("keys", "Redis keys", "keys", 0.20, 200.0),
    Margin("client_rss_mib", "load generator RSS (not Coord)", "MiB", 0.20, 32.0),
)

# Latency as the load generator measures it: a stall of the load generator itself (its event loop
# waking late because the machine is busy) adds to every call it times, however fast the server was.
LATENCY = frozenset({"p50_ms", "p99_ms"})

# Unexpected failures allowed over the whole run: one per this many calls (0 in a short run).
ERRORS_PER_ALLOWED = 10_000
MIN_SAMPLES_AFTER_WARMUP = 3


@dataclass(frozen=True)
class Finding:
    """One metric judged: baseline and end (medians), the allowed move, the slope, and the outcome."""

    margin: Margin
    base: float
    end: float
    slope_per_hour: float
    ok: bool
    excuse: str = ""  # why a latency beyond its margin does not fail the run (see judge)

    @property
    def change(self) -> float:
        return self.end - self.base

    @property
    def fails(self) -> bool:
        return not self.ok and not self.excuse

    def line(self) -> str:
        m = self.margin
        verdict = "ok" if self.ok else "WARN" if self.excuse else "FAIL"
        allowed = ("+" if m.grows else "-") + _num(m.allowance(self.base))
        return (
            f"{verdict:4} {m.label}: {_num(self.base)} -> {_num(self.end)} {m.unit} "
            f"({_signed(self.change)}, allowed {allowed}; slope {_signed(self.slope_per_hour)}/h)"
            + (f": {self.excuse}" if self.excuse else "")
        )


@dataclass(frozen=True)
class Verdict:
    findings: list[Finding]
    errors: int
    errors_allowed: int
    ops: int
    warmup: int
    samples_after_warmup: int

    @property
    def ok(self) -> bool:
        return self.errors <= self.errors_allowed and not any(f.fails for f in self.findings)

    def lines(self) -> list[str]:
        out = [
            f"Baseline: median of the first third of the {self.samples_after_warmup} samples after the "
            f"{self.warmup}-sample warm-up; end: median of the last third.",
        ]
        out += [f.line() for f in self.findings]
        errors_ok = "ok  " if self.errors <= self.errors_allowed else "FAIL"
        out.append(
            f"{errors_ok} errors: {self.errors} in {self.ops:,} calls "
            f"(allowed {self.errors_allowed}: one per {ERRORS_PER_ALLOWED:,} calls)"
        )
        warned = sum(1 for f in self.findings if f.excuse)
        note = f" ({warned} latency WARN line{'s' if warned > 1 else ''}: see above)" if warned else ""
        out.append(
            f"PASS: nothing grew beyond its margin{note}" if self.ok else "FAIL: see the FAIL lines above"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "errors_allowed": self.errors_allowed,
            "warmup_samples": self.warmup,
            "samples_after_warmup": self.samples_after_warmup,
            "metrics": [
                {
                    "metric": f.margin.metric,
                    "label": f.margin.label,
                    "unit": f.margin.unit,
                    "base": round(f.base, 3),
                    "end": round(f.end, 3),
                    "allowed": round(f.margin.allowance(f.base), 3),
                    "slope_per_hour": round(f.slope_per_hour, 3),
                    "ok": f.ok,
                    "excuse": f.excuse,
                }
                for f in self.findings
            ],
        }


def _value(sample: Sample, metric: str) -> float:
    return float(getattr(sample, metric))


def slope_per_hour(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of ``ys`` over ``xs`` (seconds), per hour; 0 with fewer than 2 points."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 3600.0


def judge(samples: Sequence[Sample], warmup: int, margins: Sequence[Margin] = MARGINS) -> Verdict:
    """The verdict on ``samples`` with the first ``warmup`` left out (see the module docstring).

    Raises ValueError with fewer than :data:`MIN_SAMPLES_AFTER_WARMUP` samples after the warm-up.
    """
    after = list(samples[warmup:])
    if len(after) < MIN_SAMPLES_AFTER_WARMUP:
        raise ValueError(
            f"{len(after)} samples after a {warmup}-sample warm-up; a verdict needs "
            f"{MIN_SAMPLES_AFTER_WARMUP}"
        )
    third = max(1, len(after) // 3)
    lag_end = statistics.median(s.lag_p99_ms for s in after[-third:])
    load_end = statistics.median(s.load_avg for s in after[-third:])
    findings = []
    for margin in margins:
        values = [_value(s, margin.metric) for s in after]
        base = statistics.median(values[:third])
        end = statistics.median(values[-third:])
        move = end - base if margin.grows else base - end
        slope = slope_per_hour([s.seconds for s in after], values)
        ok = move <= margin.allowance(base)
        excuse = ""
        if not ok and margin.metric in LATENCY and lag_end >= move:
            # The load generator's own stalls are as long as the growth: it cannot be told from them.
            excuse = (
                f"the load generator's own event loop was {_num(lag_end)} ms late at p99 then "
                f"(load average {load_end:.1f}), as much as the growth: the machine, not the server"
            )
        findings.append(Finding(margin, base, end, slope, ok, excuse))
    ops = sum(s.ops for s in samples)
    return Verdict(
        findings=findings,
        errors=sum(s.errors for s in samples),
        errors_allowed=ops // ERRORS_PER_ALLOWED,
        ops=ops,
        warmup=warmup,
        samples_after_warmup=len(after),
    )


# -- the table -------------------------------------------------------------------------------------

Column = tuple[str, int, Callable[[Sample], str]]

COLUMNS: tuple[Column, ...] = (
    ("min", 6, lambda s: f"{s.seconds / 60:.{1 if s.interval_s >= 30 else 2}f}"),
    ("ops", 7, lambda s: f"{s.ops:,}"),
    ("ops/s", 6, lambda s: f"{s.ops_per_s:.0f}"),
    ("errors", 6, lambda s: str(s.errors)),
    ("p50 ms", 6, lambda s: f"{s.p50_ms:.2f}"),
    ("p99 ms", 7, lambda s: f"{s.p99_ms:.2f}"),
    ("srv CPU µs/op", 13, lambda s: f"{s.server_cpu_us_per_op:.0f}"),
    ("srv RSS MiB", 11, lambda s: f"{s.server_rss_mib:.1f}"),
    ("srv fds", 7, lambda s: str(s.server_fds)),
    ("Redis MiB", 9, lambda s: f"{s.redis_used_mib:.2f}"),
    ("Redis clients", 13, lambda s: str(s.redis_clients)),
    ("keys", 6, lambda s: f"{s.keys:,}"),
    ("client RSS MiB", 14, lambda s: f"{s.client_rss_mib:.1f}"),
    ("lag p99 ms", 10, lambda s: f"{s.lag_p99_ms:.1f}"),
    ("load", 5, lambda s: f"{s.load_avg:.1f}"),
)


def header() -> str:
    """The table's header and rule lines (Markdown, fixed widths so rows can be printed as they come)."""
    names = "| " + " | ".join(name.rjust(width) for name, width, _ in COLUMNS) + " |"
    rule = "|" + "|".join("-" * (width + 1) + ":" for _, width, _ in COLUMNS) + "|"
    return names + "\n" + rule


def row(sample: Sample, warmup: int) -> str:
    """One sample as a table line; warm-up samples are marked with a ``w`` after the minute."""
    cells = []
    for i, (_, width, cell) in enumerate(COLUMNS):
        text = cell(sample)
        if i == 0 and sample.index <= warmup:
            text += " w"
        cells.append(text.rjust(width))
    return "| " + " | ".join(cells) + " |"


def table(samples: Sequence[Sample], warmup: int) -> str:
    return "\n".join([header(), *(row(s, warmup) for s in samples)])


def sample_json(sample: Sample) -> dict[str, Any]:
    out = asdict(sample)
    out["ops_per_s"] = round(sample.ops_per_s, 1)
    for key, value in list(out.items()):
        if isinstance(value, float):
            out[key] = round(value, 3)
    return out


def _num(value: float) -> str:
    if value == int(value) and abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "-") + _num(abs(value))
