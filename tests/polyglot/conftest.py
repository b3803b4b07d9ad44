"""Reports the Node suite's own pass/fail counts at the end of the pytest run."""

from __future__ import annotations

import pytest

from ._node import RUNS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RUNS:
        terminalreporter.section("Node.js client suite")
        for run in RUNS:
            terminalreporter.write_line(run.summary)
