"""The soak test (``python -m bench.soak``, ``make soak``): its verdict on made-up series, its table,
its arguments, and one very short real run through the whole machinery.

The verdict tests use series made up here, so nothing depends on timing; the real run only checks
that every part ran and reported (rows, JSON, children stopped), never a latency or a verdict.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench._procs import ROOT
from bench._soak_check import COLUMNS, MARGINS, Sample, header, judge, row, table
from bench.soak import parse_args

FLAT = {
    "ops": 12_000,
    "errors": 0,
    "p50_ms": 1.0,
    "p99_ms": 8.0,
    "server_rss_mib": 80.0,
    "server_fds": 30,
    "server_cpu_us_per_op": 900.0,
    "redis_used_mib": 3.0,
    "redis_clients": 11,
    "keys": 1500,
    "client_rss_mib": 70.0,
}


def _series(count: int = 12, **growth: float) -> list[Sample]:
    """``count`` one-minute samples, flat but for each metric of ``growth``, which rises by that much
    per sample."""
    samples = []
    for i in range(count):
        values: dict[str, Any] = dict(FLAT)
        for metric, step in growth.items():
            values[metric] = type(FLAT[metric])(FLAT[metric] + step * i)
        samples.append(Sample(index=i + 1, seconds=60.0 * (i + 1), interval_s=60.0, **values))
    return samples


def _failed(samples: list[Sample], warmup: int = 2) -> set[str]:
    return {f.margin.metric for f in judge(samples, warmup).findings if f.fails}


def test_a_flat_series_passes() -> None:
    verdict = judge(_series(), warmup=2)

    assert verdict.ok
    assert {f.margin.metric for f in verdict.findings} == {m.metric for m in MARGINS}
    assert all(f.base == f.end for f in verdict.findings)
    assert verdict.samples_after_warmup == 10
    assert verdict.lines()[-1].startswith("PASS")


def test_growing_server_rss_fails_and_says_which_metric() -> None:
    samples = _series(server_rss_mib=4.0)  # 4 MiB a minute: +28 MiB between the thirds' medians

    verdict = judge(samples, warmup=2)

    assert not verdict.ok
    assert _failed(samples) == {"server_rss_mib"}
    rss = next(f for f in verdict.findings if f.margin.metric == "server_rss_mib")
    assert rss.slope_per_hour == pytest.approx(240.0)
    assert any(line.startswith("FAIL server RSS:") for line in verdict.lines())
    assert verdict.lines()[-1].startswith("FAIL")


def test_growth_inside_the_margins_passes() -> None:
    # +1 MiB a minute is +7 MiB between the medians, under the 16 MiB floor; one fd a minute (+7)
    # is under +10.
    assert _failed(_series(server_rss_mib=1.0, server_fds=1)) == set()


def test_each_gauge_has_its_own_margin() -> None:
    assert _failed(_series(server_fds=2)) == {"server_fds"}
    assert _failed(_series(redis_used_mib=1.0)) == {"redis_used_mib"}
    assert _failed(_series(redis_clients=1)) == {"redis_clients"}
    assert _failed(_series(keys=100)) == {"keys"}
    assert _failed(_series(p99_ms=3.0)) == {"p99_ms"}
    assert _failed(_series(server_cpu_us_per_op=100.0)) == {"server_cpu_us_per_op"}
    assert _failed(_series(client_rss_mib=8.0)) == {"client_rss_mib"}


def test_latency_growth_as_large_as_the_load_generators_own_stalls_only_warns() -> None:
    stalled = [dataclasses.replace(s, lag_p99_ms=25.0 * (s.index >= 9)) for s in _series(p99_ms=3.0)]

    verdict = judge(stalled, warmup=2)  # p99 +21 ms while the client's own loop is 25 ms late: WARN

    assert verdict.ok
    p99 = next(f for f in verdict.findings if f.margin.metric == "p99_ms")
    assert not p99.ok and p99.excuse and not p99.fails
    assert any(line.startswith("WARN client p99:") for line in verdict.lines())
    assert "1 latency WARN line" in verdict.lines()[-1]

    small = [dataclasses.replace(s, lag_p99_ms=5.0) for s in _series(p99_ms=3.0)]
    assert _failed(small) == {"p99_ms"}  # stalls smaller than the growth excuse nothing
    memory = [dataclasses.replace(s, lag_p99_ms=500.0) for s in _series(server_rss_mib=4.0)]
    assert _failed(memory) == {"server_rss_mib"}  # and only latency is ever excused


def test_a_falling_call_rate_fails_and_a_rising_one_does_not() -> None:
    assert _failed(_series(ops=-400)) == {"ops_per_s"}
    assert _failed(_series(ops=400)) == set()


def test_the_warmup_is_left_out() -> None:
    samples = _series()
    grown = [dataclasses.replace(s, server_rss_mib=40.0) if s.index <= 2 else s for s in samples]

    assert judge(grown, warmup=2).ok  # from 40 to 80 MiB during the warm-up only
    assert not judge(grown, warmup=0).ok


def test_one_noisy_sample_does_not_decide() -> None:
    samples = _series()
    samples[-1] = dataclasses.replace(samples[-1], p99_ms=80.0)  # one bad minute among the last third

    assert judge(samples, warmup=2).ok


def test_errors_beyond_one_per_ten_thousand_calls_fail() -> None:
    samples = _series()  # 144,000 calls: 14 errors allowed
    samples[5] = dataclasses.replace(samples[5], errors=14)
    assert judge(samples, warmup=2).ok

    samples[6] = dataclasses.replace(samples[6], errors=1)
    verdict = judge(samples, warmup=2)
    assert not verdict.ok
    assert verdict.errors == 15
    assert verdict.errors_allowed == 14
    assert all(f.ok for f in verdict.findings)


def test_a_verdict_needs_three_samples_after_the_warmup() -> None:
    with pytest.raises(ValueError, match="needs 3"):
        judge(_series(4), warmup=2)
    assert judge(_series(5), warmup=2).samples_after_warmup == 3


def test_the_table_is_markdown_with_the_warmup_marked() -> None:
    text = table(_series(4), warmup=2)
    lines = text.splitlines()

    assert lines[:2] == header().splitlines()
    assert len(lines) == 2 + 4
    for line in lines:
        assert line.startswith("|") and line.endswith("|")
        assert line.count("|") == len(COLUMNS) + 1
    assert re.match(r"\|\s+1\.0 w \|", lines[2])
    assert re.match(r"\|\s+3\.0 \|", lines[4])
    assert " w |" not in row(_series(1)[0], warmup=0)


def test_runs_too_short_for_a_verdict_are_refused_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--minutes", "4"])  # 4 samples of 60 s: 2 of warm-up, 2 after it
    assert "needs the 2 of the warm-up and 3 more" in capsys.readouterr().err

    args = parse_args(["--minutes", "5"])
    assert (args.minutes, args.sample_seconds, args.warmup) == (5.0, 60.0, 2)
    with pytest.raises(SystemExit):
        parse_args(["--minutes", "5", "--server-env", "LOG_LEVEL=debug"])  # not a COORD_ setting
    assert parse_args(["--server-env", "COORD_LOG_LEVEL=debug"]).server_env == [("COORD_LOG_LEVEL", "debug")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_short_real_run_samples_every_gauge_and_stops_its_processes(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = [
        sys.executable, "-m", "bench.soak", "--minutes", "0.25", "--sample-seconds", "3", "--warmup", "1",
        "--rate", "50", "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=100)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the soak and the children it started
            proc.wait()

    assert proc.returncode in (0, 1), stderr
    pids = re.search(r"redis-server pid (\d+), Coord pid (\d+)", stderr)
    assert pids is not None, stderr
    assert not any(_alive(int(pid)) for pid in pids.groups())

    report = json.loads(out.read_text())
    samples = report["samples"]
    assert len(samples) == 5
    assert all(s["ops"] > 0 for s in samples)
    for s in samples:
        assert s["server_rss_mib"] > 0 and s["server_fds"] > 0 and s["client_rss_mib"] > 0
        assert s["redis_used_mib"] > 0 and s["redis_clients"] > 0 and s["keys"] > 0
    assert report["verdict"]["samples_after_warmup"] == 4
    assert {m["metric"] for m in report["verdict"]["metrics"]} == {m.metric for m in MARGINS}
    assert report["server_env"]["COORD_EVENTS_MAX_LENGTH"] == "200"
    assert sum(report["events"]["published"].values()) > 0

    table_lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert table_lines[:2] == header().splitlines()
    assert len(table_lines) == 2 + 5
    assert ("PASS:" in stdout) == (proc.returncode == 0)
