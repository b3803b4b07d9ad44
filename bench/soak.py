"""``python -m bench.soak`` (``make soak``): a steady mixed load for a long time, watching for growth.

The run owns its processes, as ``make bench`` does: a private redis-server (no persistence) and a
real Coord server (``python -m coord_server``) in a process of its own on a free 127.0.0.1 port, so
that the RSS and open descriptors sampled are the server's alone; both are stopped by pid when the
run ends. The load (``bench/_soak_load.py``) comes from this process through ``AsyncClient``, at
``--rate`` calls per second, over every service.

Every ``--sample-seconds`` (default 60) one row is printed: the calls of that interval, their errors
and p50/p99 latency, the server's CPU per call, RSS and open fds, Redis's used_memory, connected
clients and key count, this process's own RSS, and the machine's load average (latency on a busy
machine says little about the server; its CPU per call does). The first ``--warmup`` samples are
marked ``w`` and left out of the verdict (``bench/_soak_check.py``): a metric fails when the median
of the last third of the samples after the warm-up exceeds the median of the first third by more
than its margin; the run then exits 1. The table is Markdown, so it can be pasted into a note, and it is also
written as JSON to ``bench/results/soak-latest.json``.

The server runs with shorter retention windows than its defaults (:data:`SERVER_ENV`), so that
every key the load writes reaches its steady state within the warm-up: with a week of event
retention or ten minutes of lock history, Redis would rightly keep growing for that long.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis.asyncio as aioredis

from coord_client import AsyncClient
from coord_server.events.keys import EventsKeys

from ._harness import new_event_loop, progress
from ._procs import start_coord, start_redis
from ._soak_check import (
    MARGINS,
    MIB,
    MIN_SAMPLES_AFTER_WARMUP,
    Sample,
    Verdict,
    header,
    judge,
    row,
    sample_json,
)
from ._soak_load import JOBS, SHORT_GROUP, Interval, Load

RESULTS = Path(__file__).resolve().parent / "results" / "soak-latest.json"

# Retention windows shortened to a minute (see the module docstring); the code paths are the same.
SERVER_ENV = {
    "COORD_LOCK_HISTORY": "60s",  # ended grants remembered (default 10 min)
    "COORD_TOMBSTONE_TTL": "60s",  # a deleted cache key's tombstone (default 1 h)
    "COORD_SESSION_TOMBSTONE_TTL": "60s",  # an ended session's record (default 5 min)
    "COORD_EVENTS_DEDUP_WINDOW": "60s",  # a publish dedup id (default 2 min)
    "COORD_EVENTS_MAX_LENGTH": "200",  # events kept per topic (default 100,000, a week at most)
}
CLIENT_TIMEOUT = 5.0  # seconds; a call slower than this is an error


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError("must be above 0")
        return value

    return parse


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("COORD_"):
        raise argparse.ArgumentTypeError(f"{text!r} is not COORD_NAME=value")
    return name, value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--minutes", type=_positive(float), default=30.0, help="length of the run (default 30)"
    )
    parser.add_argument(
        "--sample-seconds",
        type=_positive(float),
        default=60.0,
        metavar="S",
        help="length of one sample, one row of the table (default 60)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        metavar="N",
        help="samples left out of the verdict at the start (default 2, two minutes)",
    )
    parser.add_argument(
        "--rate", type=_positive(float), default=200.0, help="paced calls per second (default 200)"
    )
    parser.add_argument(
        "--max-in-flight",
        type=_positive(int),
        default=256,
        metavar="N",
        help="most paced calls in flight; later ones are counted as behind, not sent (default 256)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, metavar="PATH", help="where to write the JSON")
    parser.add_argument(
        "--server-env",
        type=_assignment,
        action="append",
        default=[],
        metavar="COORD_NAME=VALUE",
        help="a setting of the Coord server (repeatable; overrides the soak's own)",
    )
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    samples = _sample_count(args)
    if samples < args.warmup + MIN_SAMPLES_AFTER_WARMUP:
        parser.error(
            f"{args.minutes:g} minutes of {args.sample_seconds:g} s samples make {samples}; the verdict "
            f"needs the {args.warmup} of the warm-up and {MIN_SAMPLES_AFTER_WARMUP} more "
            "(a longer --minutes, a shorter --sample-seconds or a shorter --warmup)"
        )
    return args


def _sample_count(args: argparse.Namespace) -> int:
    return max(1, round(float(args.minutes) * 60 / float(args.sample_seconds)))


# -- gauges ----------------------------------------------------------------------------------------


class ProcGauge:
    """RSS, open descriptors, threads and CPU time of one process, read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")

    def _status(self, field_name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        return 0

    def rss_mib(self) -> float:
        return self._status("VmRSS") / 1024  # kB

    def threads(self) -> int:
        return self._status("Threads")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self) -> float:
        # Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted after the ")" ending the name.
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / self._tick


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _percentile(ordered: list[int], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def _slowest(interval: Interval, count: int = 4) -> dict[str, dict[str, float]]:
    """The kinds of call with the highest p99 in the interval: calls, p50 and p99 (ms) of each."""
    stats = {}
    for kind, values in interval.latencies_ns.items():
        ordered = sorted(values)
        stats[kind] = {
            "calls": len(ordered),
            "p50_ms": round(_percentile(ordered, 0.50), 3),
            "p99_ms": round(_percentile(ordered, 0.99), 3),
        }
    top = sorted(stats, key=lambda k: stats[k]["p99_ms"], reverse=True)[:count]
    return {kind: stats[kind] for kind in top}


@dataclass
class Run:
    """What a run has gathered so far (kept when it is interrupted)."""

    samples: list[Sample] = field(default_factory=list)
    load: Load | None = None


async def _redis_gauges(r: aioredis.Redis, jobs_key: str) -> dict[str, Any]:
    info: dict[str, Any] = await r.info()
    keys = int(await r.dbsize())
    try:
        groups = await r.xinfo_groups(jobs_key)
    except aioredis.ResponseError:  # no stream yet
        groups = []
    consumers = {_text(g["name"]): int(g["consumers"]) for g in groups}
    return {
        "used": int(info["used_memory"]),
        "rss": int(info.get("used_memory_rss", 0)),
        "clients": int(info["connected_clients"]),
        "cpu": float(info.get("used_cpu_sys", 0.0)) + float(info.get("used_cpu_user", 0.0)),
        "scripts": int(info.get("number_of_cached_scripts", 0)),
        "expired": int(info.get("expired_keys", 0)),
        "keys": keys,
        "group_consumers": consumers,
    }


async def _soak(args: argparse.Namespace, run: Run, target: str, redis_url: str, coord_pid: int) -> None:
    client = AsyncClient(target, timeout=CLIENT_TIMEOUT)
    r = aioredis.Redis.from_url(redis_url)
    load = run.load = Load(client, args.rate, max_in_flight=args.max_in_flight)
    server, me = ProcGauge(coord_pid), ProcGauge(os.getpid())
    jobs_key = EventsKeys("default").stream(JOBS)
    loop = asyncio.get_running_loop()
    load_task = asyncio.create_task(load.run())
    start = last = loop.time()
    load.rec.drain()
    cpu_before = server.cpu_seconds()
    redis_before = await _redis_gauges(r, jobs_key)
    print(header(), flush=True)
    try:
        for k in range(1, _sample_count(args) + 1):
            await asyncio.sleep(max(0.0, start + k * args.sample_seconds - loop.time()))
            if load_task.done():
                load_task.result()  # the load ended: raise what ended it
                raise RuntimeError("the load stopped")
            interval: Interval = load.rec.drain()
            now = loop.time()
            cpu = server.cpu_seconds()
            gauges = await _redis_gauges(r, jobs_key)
            ordered = sorted(interval.all_latencies())
            lags = sorted(interval.loop_lags_ms)
            ops = max(interval.ops, 1)
            sample = Sample(
                index=k,
                seconds=now - start,
                ops=interval.ops,
                errors=interval.errors,
                p50_ms=_percentile(ordered, 0.50),
                p99_ms=_percentile(ordered, 0.99),
                server_rss_mib=server.rss_mib(),
                server_fds=server.fds(),
                server_cpu_us_per_op=(cpu - cpu_before) * 1e6 / ops,
                redis_used_mib=gauges["used"] / MIB,
                redis_clients=gauges["clients"],
                keys=gauges["keys"],
                client_rss_mib=me.rss_mib(),
                interval_s=now - last,
                behind=interval.behind,
                load_avg=os.getloadavg()[0],
                lag_p99_ms=lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0.0,
                extra={
                    "client_loop_lag_max_ms": round(lags[-1], 1) if lags else 0.0,
                    "server_threads": server.threads(),
                    "redis_rss_mib": round(gauges["rss"] / MIB, 3),
                    "redis_cpu_us_per_op": round((gauges["cpu"] - redis_before["cpu"]) * 1e6 / ops, 1),
                    "redis_cached_scripts": gauges["scripts"],
                    "redis_expired_keys": gauges["expired"] - redis_before["expired"],
                    "group_consumers": gauges["group_consumers"],
                    "client_tasks": len(asyncio.all_tasks()),
                    "published": sum(load.events.published.values()),
                    "received": sum(load.events.received.values()),
                    "slowest_kinds": _slowest(interval),
                },
            )
            run.samples.append(sample)
            print(row(sample, args.warmup), flush=True)
            last, cpu_before, redis_before = now, cpu, gauges
    finally:
        load_task.cancel()
        await asyncio.gather(load_task, return_exceptions=True)
        await client.close()
        await r.aclose()


def _log_lines(log: Path) -> list[str]:
    try:
        return log.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _log_summary(lines: list[str], during: int) -> list[str]:
    """How many lines the server logged during the run (the first ``during``) and at its shutdown, how
    many of them were warnings or errors, and the last few of those."""

    def bad(part: list[str]) -> list[str]:
        return [
            line for line in part if any(f" {level} " in line for level in ("WARNING", "ERROR", "CRITICAL"))
        ]

    run, stop = bad(lines[:during]), bad(lines[during:])
    out = [
        f"server log: {during} lines during the run, {len(run)} warnings or errors; "
        f"{len(lines) - during} lines at shutdown, {len(stop)} warnings or errors"
    ]
    out += [f"  run: {line[:200]}" for line in run[-5:]]
    out += [f"  shutdown: {line[:200]}" for line in stop[-3:]]
    return out


CONSUMERS_MARGIN = 5  # more consumers in the short-lived streams' group at the end than after warm-up


def _consumers_check(samples: Sequence[Sample], warmup: int) -> tuple[str, bool]:
    """The consumers Redis keeps in the group of the short-lived Consume streams, after the warm-up
    and at the end, and whether that stayed within CONSUMERS_MARGIN: a stream that ends holding
    nothing is taken out of its group, so the list must not grow with the streams that come and go."""
    counts = [s.extra.get("group_consumers", {}).get(SHORT_GROUP, 0) for s in samples]
    after = counts[warmup:] or counts
    if not after:
        return "", True
    ok = after[-1] <= after[0] + CONSUMERS_MARGIN
    return (
        f"consumer group {SHORT_GROUP} of {JOBS}: {after[0]} consumers after the warm-up, {after[-1]} at "
        f"the end ({'ok' if ok else 'FAIL'}: at most +{CONSUMERS_MARGIN})",
        ok,
    )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwind, so that the children are stopped


def _report(
    args: argparse.Namespace,
    argv: Sequence[str],
    run: Run,
    *,
    started: datetime.datetime,
    seconds: float,
    log_lines: list[str],
) -> int:
    verdict: Verdict | None = None
    try:
        verdict = judge(run.samples, args.warmup)
    except ValueError as exc:
        print(f"\nno verdict: {exc}")
    load = run.load
    consumers_ok = True
    print()
    if verdict is not None:
        print("\n".join(verdict.lines()))
    if load is not None:
        published = dict(sorted(load.events.published.items()))
        received = dict(sorted(load.events.received.items()))
        print(f"events published {published}; received {received}")
        line, consumers_ok = _consumers_check(run.samples, args.warmup)
        print(line)
        for what, count in load.rec.failures.most_common(10):
            print(f"  failure x{count}: {what}")
    for line in log_lines:
        print(line)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "command": shlex.join(["python", "-m", "bench.soak", *argv]),
        "rate": args.rate,
        "sample_seconds": args.sample_seconds,
        "warmup_samples": args.warmup,
        "server_env": {**SERVER_ENV, **dict(args.server_env)},
        "margins": {m.metric: m.describe() for m in MARGINS},
        "samples": [sample_json(s) for s in run.samples],
        "verdict": verdict.to_json() if verdict is not None else None,
        "failures": dict(load.rec.failures) if load is not None else {},
        "events": {
            "published": dict(load.events.published) if load is not None else {},
            "received": dict(load.events.received) if load is not None else {},
        },
        "server_log": log_lines,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"JSON: {args.json}")
    return 0 if verdict is not None and verdict.ok and consumers_ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server_env = {**SERVER_ENV, **dict(args.server_env)}
    started, clock = datetime.datetime.now(datetime.UTC), time.monotonic()
    signal.signal(signal.SIGTERM, _on_sigterm)
    run = Run()
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="coord-soak-") as tmp, contextlib.ExitStack() as children:
        workdir = Path(tmp)
        try:
            redis_child, redis_url = start_redis(workdir)
            children.callback(redis_child.stop)
            coord, target = start_coord(workdir, redis_url, label="coord", env=server_env)
            children.callback(coord.stop)
        except RuntimeError as exc:
            print(f"python -m bench.soak: {exc}", file=sys.stderr)
            return 1
        progress(
            f"redis-server pid {redis_child.pid}, Coord pid {coord.pid} on {target}; "
            f"{args.minutes:g} min at {args.rate:g} calls/s, samples of {args.sample_seconds:g} s, "
            f"warm-up {args.warmup} samples; server settings "
            + " ".join(f"{k}={v}" for k, v in server_env.items())
        )
        print(
            f"Soak {started:%Y-%m-%d %H:%M} UTC: {args.minutes:g} min at {args.rate:g} calls/s, "
            f"{args.sample_seconds:g} s per row, the first {args.warmup} rows (w) are the warm-up.\n"
        )
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(_soak(args, run, target, redis_url, coord.pid))
        except KeyboardInterrupt:
            interrupted = True
            print(f"\ninterrupted after {len(run.samples)} samples")
        except Exception as exc:  # the load or a gauge failed: report what was gathered
            print(f"\nthe soak stopped: {type(exc).__name__}: {exc}")
            interrupted = True
        during = len(_log_lines(coord.log))
        coord.stop()
        log_lines = _log_summary(_log_lines(coord.log), during)
    given = sys.argv[1:] if argv is None else argv
    status = _report(args, given, run, started=started, seconds=time.monotonic() - clock, log_lines=log_lines)
    return 1 if interrupted else status


if __name__ == "__main__":
    sys.exit(main())
