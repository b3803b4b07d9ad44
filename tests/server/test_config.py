"""Settings from COORD_* environment variables and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from coord_server.config import ConfigError, Settings, load_settings, parse_duration, parse_size


def test_defaults() -> None:
    s = load_settings([], {})
    assert s == Settings()
    assert s.listen == "127.0.0.1:50051" and s.embedded and s.data_dir == Path(".coord")


def test_environment_then_flags_win() -> None:
    env = {
        "COORD_LISTEN": "127.0.0.1:6000",
        "COORD_REDIS_URL": "redis://127.0.0.1:7000/0",
        "COORD_REDIS_CLUSTER": "true",
        "COORD_SHUTDOWN_GRACE": "2500ms",
        "COORD_MAX_VALUE_SIZE": "512KiB",
        "COORD_LOG_LEVEL": "debug",
        "COORD_DATA_DIR": "/tmp/x",
    }
    s = load_settings(["--listen", "127.0.0.1:6001", "--max-batch", "7"], env)
    assert s.listen == "127.0.0.1:6001"
    assert s.redis_url == "redis://127.0.0.1:7000/0" and s.redis_cluster and not s.embedded
    assert s.shutdown_grace == 2.5 and s.max_value_bytes == 512 * 1024 and s.max_batch == 7
    assert s.data_dir == Path("/tmp/x")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COORD_REDIS_URL": "http://x"}, "redis url"),
        ({"COORD_REDIS_CLUSTER": "1"}, "needs COORD_REDIS_URL"),
        ({"COORD_REDIS_URL": "unix:///tmp/s", "COORD_REDIS_CLUSTER": "1"}, "cluster seed"),
        ({"COORD_SHUTDOWN_GRACE": "soon"}, "COORD_SHUTDOWN_GRACE"),
        ({"COORD_MAX_VALUE_SIZE": "lots"}, "COORD_MAX_VALUE_SIZE"),
        ({"COORD_MAX_BATCH": "ten"}, "COORD_MAX_BATCH"),
        ({"COORD_LOG_LEVEL": "LOUD"}, "log level"),
        ({"COORD_LISTEN": "nohostport"}, "listen"),
        ({"COORD_MIN_TTL": "2h", "COORD_DEFAULT_TTL": "1h"}, "ttl"),
        ({"COORD_MAX_VALUE_SIZE": "4MiB"}, "max message size"),
        ({"COORD_REDIS_CLUSTER": "maybe"}, "boolean"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings([], env)


def test_duration_and_size_parsers() -> None:
    assert parse_duration("250ms", "x") == 0.25
    assert parse_duration("3", "x") == 3.0
    assert parse_duration("1d", "x") == 86400.0
    assert parse_size("1MiB", "x") == 1 << 20
    assert parse_size("2k", "x") == 2048
    with pytest.raises(ConfigError):
        parse_duration("-1s", "x")
