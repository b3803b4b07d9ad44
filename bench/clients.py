"""The other languages' client packages against the Python client, on the hottest call.

``clients.get``: cache.Get (a hit, one 100-byte value) at c=64 through the Go module
(``client/go/cmd/coord-bench``, goroutines on one connection) and through the TypeScript package
(``client/node/bench/get.mjs``, promises on one channel), each against the Python ``AsyncClient`` on
the same Coord server, rounds interleaved. Each program runs for a round's duration in a process of
its own and prints one JSON line with its calls per second. A ratio near or above 1.00x says the
server, not the client, sets the pace: a client that is slower than the server can answer shows up
as a ratio below 1.

A package that is not built (``make proto`` builds both; the Go toolchain comes from Debian's
packages) is reported and left out, not failed: the benchmark measures clients, it does not build them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord_client import AsyncClient

from ._harness import Benchmark, Env, Row, progress, run_round
from ._harness import Side as HarnessSide

ROOT = Path(__file__).resolve().parent.parent
GO_BENCH = ROOT / "client/go/.build/bin/coord-bench"
NODE_BENCH = ROOT / "client/node/bench/get.mjs"
CONCURRENCY = 64
KEY = "coord-bench"
VALUE = b"v" * 100


# A client program: its command line for a round of so many seconds.
Program = Callable[[float], list[str]]


def go_bench(target: str) -> Path | None:
    """client/go's cmd/coord-bench, built first (``make go-bench`` builds it, then runs it briefly
    against ``target``); None when Go or the generated stubs are missing."""
    if shutil.which("go") is None or not (ROOT / "client/go/gen").is_dir():
        return None
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-s",
            "go-bench",
            f"GO_BENCH_ARGS=-c 1 -d 100ms -target {target} -key {KEY}",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return GO_BENCH


def _go_program(target: str) -> Program | None:
    """The Go program (see :func:`go_bench`)."""
    if go_bench(target) is None:
        return None
    return lambda seconds: [
        *(str(GO_BENCH), "-c", str(CONCURRENCY), "-d", f"{seconds}s", "-target", target, "-key", KEY)
    ]


def _node_program(target: str) -> Program | None:
    node = shutil.which("node")
    if node is None or not (ROOT / "client/node/dist").is_dir():
        return None
    # get.mjs takes [concurrency] [seconds], the server from COORD_TARGET; it reads a key of its own.
    return lambda seconds: [node, str(NODE_BENCH), str(CONCURRENCY), str(seconds)]


async def _run_program(command: Sequence[str], target: str) -> float:
    """One round of an external client: its calls per second, from the JSON line it prints last."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "COORD_TARGET": target},
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {proc.returncode}: {err.decode(errors='replace')[-500:]}")
    last = [line for line in out.decode().splitlines() if line.strip()][-1]
    report = json.loads(last)
    if report.get("errors"):
        raise RuntimeError(f"{command[0]}: {report['errors']} calls failed")
    return float(report["ops_per_s"])


async def bench_get(env: Env) -> list[Row]:
    await cache_pb2_grpc.CacheServiceStub(env.coord).Set(
        cache_pb2.SetRequest(key=KEY, value=VALUE), timeout=10
    )
    plan = env.plan
    target = env.coord_target
    programs: dict[str, Program] = {}
    for name, find in (("Go module", _go_program), ("TypeScript package", _node_program)):
        program = await asyncio.to_thread(find, target)
        if program is None:
            progress(f"clients.get: the {name} is not built (make proto), left out")
        else:
            programs[name] = program
    if not programs:
        return []
    async with AsyncClient(target, timeout=10) as client:

        async def get(_: int) -> None:
            await client.cache.get(KEY)

        python = HarnessSide("Python AsyncClient", get, env.coord_pid)
        await run_round(python, CONCURRENCY, plan.warmup)
        for program in programs.values():
            await _run_program(program(plan.warmup), target)
        py_rates: list[float] = []
        rates: dict[str, list[float]] = {name: [] for name in programs}
        for i in range(plan.rounds):
            order = list(programs.items())
            if i % 2:
                order.reverse()
            py_rates.append((await run_round(python, CONCURRENCY, plan.duration)).ops_per_s)
            for name, program in order:
                rates[name].append(await _run_program(program(plan.duration), target))
    baseline = statistics.median(py_rates)
    rows = []
    for name, values in rates.items():
        mine = statistics.median(values)
        progress(f"cache.Get c={CONCURRENCY}: {name} {mine:,.0f}/s, Python AsyncClient {baseline:,.0f}/s")
        rows.append(
            Row(f"cache.Get through the {name}", "Python AsyncClient", "ops/s", mine, baseline, CONCURRENCY)
        )
    return rows


BENCHMARKS = (Benchmark("clients.get", bench_get),)
