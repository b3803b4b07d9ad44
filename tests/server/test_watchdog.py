"""The shutdown watchdog: once armed, a process whose shutdown hangs ends with status 1, an error in
its log and every thread's stack on stderr; disarmed in time, it does nothing."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import logging, sys, threading
from coord_server.watchdog import ShutdownWatchdog
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
watchdog = ShutdownWatchdog(grace=0.05, margin=0.05)
watchdog.start()
if sys.argv[1] == "cancel":
    watchdog.cancel()
threading.Event().wait(float(sys.argv[2]))  # a shutdown that hangs (or work that goes on)
"""


def _run(mode: str, wait: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, mode, str(wait)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_hung_shutdown_ends_with_status_1_its_stacks_and_an_error() -> None:
    run = _run("arm", 50)  # the hang outlasts the watchdog by far: only the watchdog ends it this early
    assert run.returncode == 1, run.stderr
    assert "shutdown did not finish within 0.1s: exiting now" in run.stderr
    assert "Current thread" in run.stderr or "Thread 0x" in run.stderr  # faulthandler's dump
    assert "threading.py" in run.stderr  # the main thread's stack: waiting in Event.wait


def test_a_cancelled_watchdog_never_fires() -> None:
    run = _run("cancel", 1)
    assert run.returncode == 0, run.stderr
    assert "shutdown did not finish" not in run.stderr
