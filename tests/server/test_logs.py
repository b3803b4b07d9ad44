"""Log output: JSON lines with the RPC's fields, and one line per outage instead of one per call."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.election.v1 import election_pb2_grpc
from coord_server.config import ConfigError, Settings
from coord_server.logs import FOLD_KEY, JsonFormatter, OutageFilter, configure

from ..conftest import CoordThread, RedisProcess, free_port, wait_for
from ..election._util import CampaignStream
from ..events.helpers import error_info


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("coord_server._grpc", logging.WARNING, __file__, 1, message, None, None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def test_a_json_line_has_the_time_level_logger_message_and_the_rpc_fields() -> None:
    record = _record("Get: Redis is unavailable", method="CacheServicer.Get", code="UNAVAILABLE", tenant="t1")
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "WARNING" and out["logger"] == "coord_server._grpc"
    assert out["message"] == "Get: Redis is unavailable"
    assert (out["method"], out["code"], out["tenant"]) == ("CacheServicer.Get", "UNAVAILABLE", "t1")
    assert out["time"].endswith("Z") and "T" in out["time"]


def test_a_traceback_stays_on_its_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_records_of_a_flood_are_folded_and_counted() -> None:
    fold = OutageFilter(window=3600.0)
    passed = [fold.filter(_record("unavailable", **{FOLD_KEY: "BACKEND_UNAVAILABLE"})) for _ in range(100)]
    assert passed.count(True) == 1 and passed[0]
    assert fold.folded("BACKEND_UNAVAILABLE") == 99
    # Other records are never held back.
    assert all(fold.filter(_record("something else")) for _ in range(5))
    # Once the window has passed, the next one goes out and says how many it stands for.
    fold.window = 0.0
    record = _record("unavailable", **{FOLD_KEY: "BACKEND_UNAVAILABLE"})
    assert fold.filter(record)
    assert "(and 99 more like it in the last" in record.getMessage()
    assert fold.folded("BACKEND_UNAVAILABLE") == 0


def test_configure_writes_json_lines() -> None:
    stream = io.StringIO()
    handler = configure("info", "json", stream=stream)
    try:
        logging.getLogger("coord_server.test").info("hello %s", "there")
        logging.getLogger("coord_server.test").debug("not at info")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["hello there"]


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="COORD_LOG_FORMAT"):
        Settings(log_format="xml").validate()


def test_a_server_in_an_outage_writes_json_and_folds_the_failed_calls(
    redis_factory: Callable[..., RedisProcess], tmp_path: Path
) -> None:
    backing = redis_factory()
    port = free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env["COORD_LOG_FORMAT"] = "json"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coord_server", "--listen", f"127.0.0.1:{port}",
             "--redis-url", backing.url, "--redis-timeout", "0.5s", "--shutdown-grace", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        target = f"127.0.0.1:{port}"
        with grpc.insecure_channel(target) as channel:
            cache = cache_pb2_grpc.CacheServiceStub(channel)
            wait_for(lambda: _answers(cache), "the server to answer")
            backing.stop()
            codes = [_code(cache) for _ in range(40)]
        assert codes == [grpc.StatusCode.UNAVAILABLE] * 40
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines, "the server wrote nothing"
    failed = [line for line in lines if line.get("reason") == "BACKEND_UNAVAILABLE"]
    # Forty failed calls, one line (the rest folded into the next line, written after 10 s at most).
    assert len(failed) == 1, failed
    assert failed[0]["method"] == "CacheServicer.Get" and failed[0]["code"] == "UNAVAILABLE"
    assert failed[0]["level"] == "WARNING"


def _answers(cache: cache_pb2_grpc.CacheServiceStub) -> bool:
    try:
        cache.Get(cache_pb2.GetRequest(key="k"), timeout=2)
    except grpc.RpcError:
        return False
    return True


def _code(cache: cache_pb2_grpc.CacheServiceStub) -> grpc.StatusCode:
    try:
        cache.Get(cache_pb2.GetRequest(key="k"), timeout=5)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_the_access_log_writes_one_line_per_call_with_its_code(
    redis_single: RedisProcess,
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_coord(redis_single.url, access_log=True)
    caplog.set_level(logging.INFO, logger="coord_server.access")
    with grpc.insecure_channel(server.target) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        cache.Get(cache_pb2.GetRequest(key="a"), timeout=10)
        cache.Get(cache_pb2.GetRequest(key="b"), timeout=10)
        with pytest.raises(grpc.RpcError):
            cache.Get(cache_pb2.GetRequest(key=""), timeout=10)
    wait_for(lambda: len(_access(caplog)) >= 3, "three access lines")
    lines = _access(caplog)
    assert [(r.method, r.code) for r in lines] == [  # type: ignore[attr-defined]
        ("/coord.cache.v1.CacheService/Get", "OK"),
        ("/coord.cache.v1.CacheService/Get", "OK"),
        ("/coord.cache.v1.CacheService/Get", "INVALID_ARGUMENT"),
    ]
    assert all(r.tenant == "default" and r.duration_ms >= 0 for r in lines)  # type: ignore[attr-defined]


def test_without_the_setting_there_is_no_access_log(
    redis_single: RedisProcess,
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_coord(redis_single.url)
    caplog.set_level(logging.INFO, logger="coord_server.access")
    with grpc.insecure_channel(server.target) as channel:
        cache_pb2_grpc.CacheServiceStub(channel).Get(cache_pb2.GetRequest(key="a"), timeout=10)
    assert _access(caplog) == []


def _access(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "coord_server.access"]


def test_calls_a_client_dooms_write_no_warning(
    redis_single: RedisProcess,
    start_coord: Callable[..., CoordThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fifty Campaigns for a name that stays led, each with a deadline too short to be elected: the
    server ends each one itself just before its deadline (DEADLINE_EXCEEDED, DEADLINE_TOO_SHORT), and
    fifty requests are refused as invalid. What a client causes is logged at DEBUG, never WARNING."""
    server = start_coord(redis_single.url)
    caplog.set_level(logging.DEBUG, logger="coord_server.rpc")
    with grpc.insecure_channel(server.target) as channel:
        stub = election_pb2_grpc.ElectionServiceStub(channel)
        leader = CampaignStream(stub, timeout=60)
        leader.elected("busy", ttl=30)

        def contend(_: int) -> grpc.RpcError:
            contender = CampaignStream(stub, timeout=1.0)
            contender.join("busy")
            with pytest.raises(grpc.RpcError) as caught:
                while True:
                    assert contender.next().WhichOneof("kind") == "queued"
            return caught.value

        with ThreadPoolExecutor(max_workers=50) as pool:
            errors = list(pool.map(contend, range(50)))
        leader.cut()
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        for _ in range(50):
            with pytest.raises(grpc.RpcError):
                cache.Get(cache_pb2.GetRequest(key=""), timeout=10)
    assert {e.code() for e in errors} == {grpc.StatusCode.DEADLINE_EXCEEDED}
    # The server's own answer carries the reason (the client's deadline may win a race: none).
    told = [e for e in errors if e.trailing_metadata() and error_info(e).reason == "DEADLINE_TOO_SHORT"]
    records = [r for r in caplog.records if r.name == "coord_server.rpc"]
    doomed = [r for r in records if getattr(r, "reason", "") == "DEADLINE_TOO_SHORT"]
    invalid = [r for r in records if getattr(r, "reason", "") == "INVALID_FIELD"]
    assert len(doomed) >= max(1, len(told)) and len(invalid) == 50  # logged, each of them...
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []  # ...at DEBUG
