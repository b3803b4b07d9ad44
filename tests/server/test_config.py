"""Settings from COORD_* environment variables and flags, and the docs generated from them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from coord_server.config import (
    ConfigError,
    Settings,
    build_parser,
    format_duration,
    load_settings,
    markdown,
    parse_duration,
    parse_size,
    specs,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

# The names deployments use: a rename breaks them, so it must be deliberate (and change this list).
CONTRACT = {
    "listen": "COORD_LISTEN",
    "redis_url": "COORD_REDIS_URL",
    "redis_cluster": "COORD_REDIS_CLUSTER",
    "embedded_maxmemory": "COORD_EMBEDDED_MAXMEMORY",
    "cache_redis_url": "COORD_CACHE_REDIS_URL",
    "cache_redis_cluster": "COORD_CACHE_REDIS_CLUSTER",
    "cache_redis_password_file": "COORD_CACHE_REDIS_PASSWORD_FILE",
    "allow_eviction": "COORD_ALLOW_EVICTION",
    "data_dir": "COORD_DATA_DIR",
    "max_message_bytes": "COORD_MAX_MESSAGE_SIZE",
    "shutdown_grace": "COORD_SHUTDOWN_GRACE",
    "log_level": "COORD_LOG_LEVEL",
    "log_format": "COORD_LOG_FORMAT",
    "access_log": "COORD_ACCESS_LOG",
    "redis_timeout": "COORD_REDIS_TIMEOUT",
    "health_interval": "COORD_HEALTH_INTERVAL",
    "tenant": "COORD_TENANT",
    "event_loop": "COORD_EVENT_LOOP",
    "redis_coalesce": "COORD_REDIS_COALESCE",
    "workers": "COORD_WORKERS",
    "metrics_listen": "COORD_METRICS_LISTEN",
    "tracing": "COORD_TRACING",
    "max_concurrent_streams": "COORD_MAX_CONCURRENT_STREAMS",
    "max_connection_age": "COORD_MAX_CONNECTION_AGE",
    "max_connection_age_grace": "COORD_MAX_CONNECTION_AGE_GRACE",
    "max_connection_idle": "COORD_MAX_CONNECTION_IDLE",
    "min_ping_interval": "COORD_MIN_PING_INTERVAL",
    "max_ping_strikes": "COORD_MAX_PING_STRIKES",
    "insecure": "COORD_INSECURE",
    "tls_cert": "COORD_TLS_CERT",
    "tls_key": "COORD_TLS_KEY",
    "tls_client_ca": "COORD_TLS_CLIENT_CA",
    "tls_reload_interval": "COORD_TLS_RELOAD_INTERVAL",
    "auth_file": "COORD_AUTH_FILE",
    "jwt_keys": "COORD_JWT_KEYS",
    "jwt_algorithms": "COORD_JWT_ALGORITHMS",
    "jwt_issuer": "COORD_JWT_ISSUER",
    "jwt_audience": "COORD_JWT_AUDIENCE",
    "jwt_leeway": "COORD_JWT_LEEWAY",
    "jwt_tenant_claim": "COORD_JWT_TENANT_CLAIM",
    "jwt_allow_claim": "COORD_JWT_ALLOW_CLAIM",
    "reflection": "COORD_REFLECTION",
    "redis_password_file": "COORD_REDIS_PASSWORD_FILE",
    "redis_tls_ca": "COORD_REDIS_TLS_CA",
    "redis_tls_cert": "COORD_REDIS_TLS_CERT",
    "redis_tls_key": "COORD_REDIS_TLS_KEY",
    "redis_sentinel_password_file": "COORD_REDIS_SENTINEL_PASSWORD_FILE",
    "redis_sentinel_username": "COORD_REDIS_SENTINEL_USERNAME",
    "max_key_bytes": "COORD_MAX_KEY_SIZE",
    "max_value_bytes": "COORD_MAX_VALUE_SIZE",
    "max_batch": "COORD_MAX_BATCH",
    "min_ttl": "COORD_MIN_TTL",
    "max_ttl": "COORD_MAX_TTL",
    "default_ttl": "COORD_DEFAULT_TTL",
    "tombstone_ttl": "COORD_TOMBSTONE_TTL",
    "ratelimit_policies": "COORD_RATELIMIT_POLICIES",
    "ratelimit_timeout": "COORD_RATELIMIT_TIMEOUT",
    "ratelimit_deny_cache": "COORD_RATELIMIT_DENY_CACHE",
    "envoy_ratelimit_config": "COORD_ENVOY_RATELIMIT_CONFIG",
    "envoy_ratelimit_headers": "COORD_ENVOY_RATELIMIT_HEADERS",
    "envoy_ratelimit_failure_mode": "COORD_ENVOY_RATELIMIT_FAILURE_MODE",
    "session_max_attributes_bytes": "COORD_SESSION_MAX_ATTRIBUTES_SIZE",
    "session_default_idle": "COORD_SESSION_IDLE",
    "session_default_absolute": "COORD_SESSION_ABSOLUTE",
    "session_touch_interval": "COORD_SESSION_TOUCH_INTERVAL",
    "session_default_grace": "COORD_SESSION_GRACE",
    "session_max_grace": "COORD_SESSION_MAX_GRACE",
    "session_max_per_subject": "COORD_SESSION_MAX_PER_SUBJECT",
    "session_tombstone_ttl": "COORD_SESSION_TOMBSTONE_TTL",
    "events_max_length": "COORD_EVENTS_MAX_LENGTH",
    "events_max_age": "COORD_EVENTS_MAX_AGE",
    "events_dedup_window": "COORD_EVENTS_DEDUP_WINDOW",
    "events_heartbeat": "COORD_EVENTS_HEARTBEAT",
    "events_subscriber_buffer": "COORD_EVENTS_SUBSCRIBER_BUFFER",
    "events_pattern_refresh": "COORD_EVENTS_PATTERN_REFRESH",
    "events_ack_timeout": "COORD_EVENTS_ACK_TIMEOUT",
    "events_max_deliveries": "COORD_EVENTS_MAX_DELIVERIES",
    "events_readers": "COORD_EVENTS_READERS",
    "events_read_streams": "COORD_EVENTS_READ_STREAMS",
    "lock_default_ttl": "COORD_LOCK_DEFAULT_TTL",
    "lock_history": "COORD_LOCK_HISTORY",
    "collection_max_elements": "COORD_COLLECTION_MAX_ELEMENTS",
    "cache_invalidations": "COORD_CACHE_INVALIDATIONS",
    "cache_push_value_max": "COORD_CACHE_PUSH_VALUE_MAX",
    "cache_max_lease": "COORD_CACHE_MAX_LEASE",
    "cache_max_tags": "COORD_CACHE_MAX_TAGS",
    "cache_prefix_delimiter": "COORD_CACHE_PREFIX_DELIMITER",
    "cache_min_prefix": "COORD_CACHE_MIN_PREFIX",
    "cache_prefix_depth": "COORD_CACHE_PREFIX_DEPTH",
    "list_waiter_ttl": "COORD_LIST_WAITER_TTL",
    "list_waiter_heartbeat": "COORD_LIST_WAITER_HEARTBEAT",
    "lock_waiter_ttl": "COORD_LOCK_WAITER_TTL",
    "lock_waiter_heartbeat": "COORD_LOCK_WAITER_HEARTBEAT",
    "lock_fallback": "COORD_LOCK_FALLBACK",
}
# Durations where 0 means something; every other duration refuses 0.
ZERO_ALLOWED = {
    "max_connection_age",
    "max_connection_age_grace",
    "max_connection_idle",
    "shutdown_grace",
    "session_touch_interval",
    "session_default_grace",
    "session_max_grace",
    "session_tombstone_ttl",
    "lock_history",
    "tls_reload_interval",
    "jwt_leeway",
}


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
        ({"COORD_CACHE_PREFIX_DELIMITER": "::"}, "COORD_CACHE_PREFIX_DELIMITER"),
        ({"COORD_CACHE_PREFIX_DELIMITER": "\n"}, "COORD_CACHE_PREFIX_DELIMITER"),
        ({"COORD_CACHE_MIN_PREFIX": "0"}, "COORD_CACHE_MIN_PREFIX"),
        ({"COORD_CACHE_PREFIX_DEPTH": "17"}, "COORD_CACHE_PREFIX_DEPTH"),
        ({"COORD_CACHE_PUSH_VALUE_MAX": "65KiB"}, "COORD_CACHE_PUSH_VALUE_MAX: must be 0 to 64KiB"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings([], env)


def test_push_value_max_takes_zero_and_its_bounds() -> None:
    for text, value in (("0", 0), ("1KiB", 1024), ("64KiB", 65536)):
        assert load_settings([], {"COORD_CACHE_PUSH_VALUE_MAX": text}).cache_push_value_max == value


def test_duration_and_size_parsers() -> None:
    assert parse_duration("250ms", "x") == 0.25
    assert parse_duration("3", "x") == 3.0
    assert parse_duration("1d", "x") == 86400.0
    assert parse_size("1MiB", "x") == 1 << 20
    assert parse_size("2k", "x") == 2048
    with pytest.raises(ConfigError):
        parse_duration("-1s", "x")
    assert parse_duration("1h30m", "x") == 5400.0
    with pytest.raises(ConfigError, match="x: '0' must be longer than zero"):
        parse_duration("0", "x")
    assert parse_duration("0", "x", allow_zero=True) == 0.0


def test_every_field_is_a_setting_with_its_contract_names_and_help() -> None:
    found = {name: spec for name, spec in specs()}
    assert {name: spec.env for name, spec in found.items()} == CONTRACT
    assert len({spec.flag for spec in found.values()}) == len(found)
    assert found["max_message_bytes"].flag == "--max-message-size"
    assert found["session_default_idle"].flag == "--session-idle"
    assert found["tenant"].flag == "--tenant"
    assert all(spec.help for spec in found.values())


def test_each_setting_reads_its_documented_default_from_env_and_flag() -> None:
    defaults = Settings()
    for name, spec in specs():
        shown = spec.show(getattr(defaults, name))
        if not shown:
            continue  # an empty variable means "not set"
        assert load_settings([], {spec.env: shown}) == defaults, spec.env
        assert load_settings([spec.flag, shown], {}) == defaults, spec.flag


def test_tenant_is_a_setting() -> None:
    assert load_settings([], {"COORD_TENANT": "blue"}).tenant == "blue"
    assert load_settings(["--tenant", "green"], {"COORD_TENANT": "blue"}).tenant == "green"
    with pytest.raises(ConfigError, match="tenant"):
        load_settings(["--tenant", "a:b"], {})


def test_compound_durations_in_env_and_flag() -> None:
    s = load_settings(["--session-idle", "1h30m"], {"COORD_LOCK_HISTORY": "1h30m", "COORD_MAX_TTL": "2d12h"})
    assert s.session_default_idle == 5400.0 and s.lock_history == 5400.0 and s.max_ttl == 2.5 * 86400
    assert load_settings(["--shutdown-grace", "1m30s500ms"], {}).shutdown_grace == 90.5


def test_zero_is_accepted_only_where_it_means_something() -> None:
    durations = [(name, spec) for name, spec in specs() if spec.kind == "duration"]
    assert {name for name, spec in durations if spec.zero} == ZERO_ALLOWED
    for name, spec in durations:
        if name in ZERO_ALLOWED:
            assert getattr(load_settings([], {spec.env: "0"}), name) == 0.0
            assert getattr(load_settings([spec.flag, "0s"], {}), name) == 0.0
            assert "(0: " in spec.meaning  # the docs say what 0 does
        else:
            with pytest.raises(ConfigError, match=f"^{spec.env}: '0' must be longer than zero"):
                load_settings([], {spec.env: "0"})
            with pytest.raises(ConfigError, match=f"^{spec.flag}: '0ms' must be longer than zero"):
                load_settings([spec.flag, "0ms"], {})
            # Settings built in code are held to the same rule.
            with pytest.raises(ConfigError, match=f"^{spec.env}: must be longer than zero"):
                dataclasses.replace(Settings(), **{name: 0.0}).validate()
        with pytest.raises(ConfigError, match=spec.env):
            dataclasses.replace(Settings(), **{name: -1.0}).validate()


def test_durations_are_written_in_the_syntax_they_are_read_in() -> None:
    for seconds, written in [(0.25, "250ms"), (90, "1m30s"), (1800, "30m"), (30 * 86400, "30d"), (0, "0")]:
        assert format_duration(seconds) == written
        assert parse_duration(written, "x", allow_zero=True) == seconds


def test_help_names_the_variable_and_default() -> None:
    text = build_parser().format_help()
    assert "COORD_SHUTDOWN_GRACE" in text and "default 10s" in text and "--tenant" in text


def test_docs_configuration_md_is_generated_from_the_settings() -> None:
    """A new or changed setting must be documented: regenerate with
    ``python -m coord_server.config --markdown > docs/configuration.md``."""
    assert DOCS.read_text() == markdown()
    for _, spec in specs():
        assert f"| `{spec.env}` | `{spec.flag}` |" in markdown()
