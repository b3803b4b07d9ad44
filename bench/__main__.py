"""``python -m bench`` (``make bench``): every benchmark against its baselines, in one run, interleaved.

The run owns its processes: a private redis-server (no persistence), a real Coord server and the bare
gRPC echo floor, each a child on a free 127.0.0.1 port, stopped by pid when the run ends. Load comes
from this process (asyncio, uvloop when installed). The table goes to stdout as Markdown, the rows to
``bench/results/latest.json``; progress goes to stderr. With ``--write-docs`` the run also rewrites
docs/benchmark-results.md (bench/_results.py), the one page that holds benchmark figures.

A service adds its benchmarks by writing ``bench/<service>.py`` with a ``BENCHMARKS`` tuple and adding
that module to ``SUITES`` below.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import grpc
import redis.asyncio as aioredis

from . import (
    cache,
    clients,
    collections,
    envoy,
    events,
    latency,
    levers,
    lock,
    metrics,
    near_cache,
    ratelimit,
    security,
    session,
    stampede,
)
from ._harness import Benchmark, Env, Plan, Row, new_event_loop, progress, table, write_json
from ._procs import Processes, start_all, start_coord
from ._results import DOCS, Machine, RunInfo
from ._results import write as write_docs

SUITES = (
    cache,
    clients,
    near_cache,
    stampede,
    security,
    latency,
    ratelimit,
    envoy,
    lock,
    session,
    events,
    collections,
    levers,
    metrics,
)

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
QUICK = Plan(duration=0.3, rounds=3, concurrency=(1, 64), warmup=0.15, memory_keys=2000)
FULL = Plan(duration=3.0, rounds=3, concurrency=(1, 64), warmup=1.0)


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be whole numbers >= 1")
    return levels


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="short rounds and fewer keys (under three minutes in all)"
    )
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this benchmark or prefix (cache, cache.get)"
    )
    parser.add_argument("--duration", type=float, metavar="S", help="seconds per round")
    parser.add_argument("--rounds", type=int, metavar="N", help="rounds per side (median reported)")
    parser.add_argument(
        "--concurrency", type=_levels, nargs="+", metavar="K", help="concurrent callers, e.g. 1,64 or 1 16 64"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, metavar="PATH", help="where to write the rows")
    parser.add_argument(
        "--write-docs",
        type=Path,
        nargs="?",
        const=DOCS,
        metavar="PATH",
        help="also write the results page (default docs/benchmark-results.md)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser.parse_args(argv)


def _plan(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    levels = tuple(k for group in args.concurrency for k in group) if args.concurrency else base.concurrency
    duration = args.duration if args.duration is not None else base.duration
    return Plan(
        duration=duration,
        rounds=args.rounds if args.rounds is not None else base.rounds,
        concurrency=levels,
        warmup=min(base.warmup, duration),
        memory_keys=base.memory_keys,
    )


def _selected(only: list[str] | None) -> list[Benchmark]:
    every = [b for suite in SUITES for b in suite.BENCHMARKS]
    if not only:
        return every
    return [b for b in every if any(b.name == n or b.name.startswith(n + ".") for n in only)]


async def _run(
    benchmarks: Sequence[Benchmark],
    plan: Plan,
    procs: Processes,
    workdir: Path,
    children: contextlib.ExitStack,
    *,
    failed: list[str],
) -> list[Row]:
    redis = aioredis.Redis.from_url(procs.redis_url)
    coord = grpc.aio.insecure_channel(procs.coord_target)
    floor = grpc.aio.insecure_channel(procs.floor_target)
    channels = [coord, floor]

    async def spawn_coord(
        label: str, args: Sequence[str] = (), env: dict[str, str] | None = None, without_hiredis: bool = False
    ) -> tuple[int, str, grpc.aio.Channel]:
        child, target = start_coord(
            workdir, procs.redis_url, label=label, args=args, env=env, without_hiredis=without_hiredis
        )
        children.callback(child.stop)
        channel = grpc.aio.insecure_channel(target)
        channels.append(channel)
        await asyncio.wait_for(channel.channel_ready(), 10)
        return child.pid, target, channel

    try:
        await asyncio.wait_for(coord.channel_ready(), 10)
        await asyncio.wait_for(floor.channel_ready(), 10)
        env = Env(
            plan,
            coord,
            procs.coord.pid,
            floor,
            procs.floor.pid,
            redis,
            procs.redis.pid,
            procs.redis_url,
            procs.coord_target,
            spawn_coord,
            procs.floor_target,
        )
        rows: list[Row] = []
        for bench in benchmarks:
            progress(f"{bench.name} ...")
            try:
                rows.extend(await bench.run(env))
            except Exception as exc:  # one broken benchmark must not cost the run every other figure
                progress(f"{bench.name} FAILED: {type(exc).__name__}: {exc}")
                failed.append(bench.name)
        return rows
    finally:
        for channel in channels:
            await channel.close(None)
        await redis.aclose()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwind, so that the children are stopped


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    benchmarks = _selected(args.only)
    if args.list:
        print("\n".join(b.name for b in benchmarks))
        return 0
    if not benchmarks:
        print(f"python -m bench: nothing matches --only {' '.join(args.only)}", file=sys.stderr)
        return 2
    plan = _plan(args)
    started, clock = datetime.datetime.now(datetime.UTC), time.monotonic()
    signal.signal(signal.SIGTERM, _on_sigterm)
    with tempfile.TemporaryDirectory(prefix="coord-bench-") as tmp, contextlib.ExitStack() as children:
        workdir = Path(tmp)
        try:
            procs = start_all(workdir, children)
        except RuntimeError as exc:
            print(f"python -m bench: {exc}", file=sys.stderr)
            return 1
        progress(
            f"redis-server {procs.redis_version} pid {procs.redis.pid}, "
            f"Coord pid {procs.coord.pid}, echo floor pid {procs.floor.pid}"
        )
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            failed: list[str] = []
            rows = runner.run(_run(benchmarks, plan, procs, workdir, children, failed=failed))
    run = RunInfo(
        started=started,
        seconds=time.monotonic() - clock,
        machine=Machine.here(procs.redis_version),
        plan=plan,
        quick=args.quick,
        command=shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        only=tuple(args.only or ()),
        failed=tuple(failed),
    )
    print(run.describe())
    print()
    print(table(rows))
    write_json(rows, args.json)
    print(f"\nrows written to {args.json}", file=sys.stderr)
    if args.write_docs is not None:
        write_docs(run, rows, args.write_docs)
        print(f"results page written to {args.write_docs}", file=sys.stderr)
    if failed:
        print(f"python -m bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
