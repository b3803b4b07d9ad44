"""COORD_ENVOY_RATELIMIT_CONFIG reloads: the app's reload (what SIGHUP calls) swaps in a new
configuration whole, keeps the previous one when the new one is broken (logging the file and line),
and a real ``coord-server`` process does it on SIGHUP while requests keep being answered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from coord_server.config import ConfigError

from ..conftest import CoordThread, CoordUnderTest, free_port, wait_for
from .examples import EXAMPLES
from .helpers import OK, Rls, d, no_limit, statuses, write

BROKEN = "domain: internal\ndescriptors:\n  - key: ldap\n    rate_limit:\n      unit: fortnight\n"


async def _reload(server: CoordThread) -> None:
    assert server.app is not None
    server.app.reload()


def test_reload_swaps_the_config_and_keeps_it_when_the_new_one_is_broken(
    coord_single: CoordUnderTest,
    start_coord: Callable[..., CoordThread],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = write(tmp_path / "conf", {"messaging.yaml": EXAMPLES["messaging"]})
    server = start_coord(coord_single.backing.url, envoy_ratelimit_config=str(folder))
    rls = Rls(server.target)
    try:
        assert statuses(rls("internal", d(("azure", "y")))) == [no_limit()]
        write(folder, {"internal.yaml": EXAMPLES["internal"]})
        server.run(_reload(server))
        assert rls("internal", d(("azure", "y"))).statuses[0].current_limit.requests_per_unit == 100

        write(folder, {"internal.yaml": BROKEN})
        server.run(_reload(server))
        assert f"{folder}/internal.yaml:5: invalid rate limit unit 'fortnight'" in caplog.text
        assert "NOT reloaded, the previous one stays in force" in caplog.text
        assert rls("internal", d(("azure", "y"))).statuses[0].limit_remaining == 98  # still limited
        assert rls("messaging", d(("to_number", "1"))).statuses[0].limit_remaining == 99

        (folder / "internal.yaml").unlink()  # a domain removed is a domain no longer limited
        server.run(_reload(server))
        assert statuses(rls("internal", d(("azure", "y")))) == [no_limit()]
    finally:
        rls.close()


def test_a_broken_config_stops_the_start_naming_file_and_line(
    coord_single: CoordUnderTest, start_coord: Callable[..., CoordThread], tmp_path: Path
) -> None:
    path = tmp_path / "internal.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError, match=rf"Envoy rate limit config: {path}:5: invalid rate limit unit"):
        start_coord(coord_single.backing.url, envoy_ratelimit_config=str(path))
    with pytest.raises(ConfigError, match="cannot be read"):
        start_coord(coord_single.backing.url, envoy_ratelimit_config=str(tmp_path / "missing"))


def test_sighup_reloads_a_running_server_without_failing_requests(
    coord_single: CoordUnderTest, tmp_path: Path
) -> None:
    path = tmp_path / "ratelimit.yaml"  # one file, as RUNTIME_APPDIRECTORY could hold
    path.write_text(EXAMPLES["internal"])
    port = free_port()
    env = {
        **os.environ,
        "COORD_REDIS_URL": coord_single.backing.url,
        "COORD_LISTEN": f"127.0.0.1:{port}",
        "COORD_ENVOY_RATELIMIT_CONFIG": str(path),
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "coord_server"], env=env, stderr=log)
    rls = Rls(f"127.0.0.1:{port}")
    failures: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                assert rls("internal", d(("ldap", "x"))).overall_code == OK
            except BaseException as exc:  # recorded and asserted below
                failures.append(exc)

    try:
        grpc.channel_ready_future(rls.channel).result(timeout=30)
        assert rls("internal", d(("azure", "y"))).statuses[0].current_limit.requests_per_unit == 100
        thread = threading.Thread(target=hammer)
        thread.start()
        path.write_text(EXAMPLES["internal"].replace("requests_per_unit: 100", "requests_per_unit: 7"))
        proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: rls("internal", d(("azure", "y"))).statuses[0].current_limit.requests_per_unit == 7,
            "the reloaded config",
        )
        path.write_text(BROKEN)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"NOT reloaded" in log_path.read_bytes(), "the refusal in the log")
        stop.set()
        thread.join()
        assert failures == []
        assert f"{path}:5: invalid rate limit unit 'fortnight'".encode() in log_path.read_bytes()
        assert rls("internal", d(("azure", "y"))).statuses[0].current_limit.requests_per_unit == 7
    finally:
        stop.set()
        rls.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
