"""Server settings: one frozen object built from ``COORD_*`` environment variables and flags.

A flag wins over its environment variable, which wins over the default. Durations accept ``250ms``,
``5s``, ``2m``, ``1h``, ``1d`` or a bare number of seconds.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kib|mib|gib|k|m|g)?\s*$", re.IGNORECASE)
_UNIT_BYTES = {"b": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}


class ConfigError(ValueError):
    """A setting has a value the server cannot use; the message names the setting."""


def parse_duration(text: str, name: str) -> float:
    """Parse ``text`` as a duration in seconds, or raise ConfigError naming ``name``."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"{name}: {text!r} is not a duration (examples: 250ms, 5s, 2m, 1h, 1d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_size(text: str, name: str) -> int:
    """Parse ``text`` as a byte size (``1048576``, ``512KiB``, ``1MiB``), or raise ConfigError."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"{name}: {text!r} is not a size (examples: 1024, 512KiB, 1MiB)")
    unit = (match.group(2) or "b").lower()
    return int(match.group(1)) * _UNIT_BYTES[unit]


def _parse_bool(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: {text!r} is not a boolean (use 1/0, true/false)")


@dataclass(frozen=True)
class Settings:
    """Everything the server is configured with. Built once at start; never mutated."""

    listen: str = "127.0.0.1:50051"
    redis_url: str = ""  # empty: start an embedded redis-server
    redis_cluster: bool = False
    data_dir: Path = Path(".coord")
    max_message_bytes: int = 4 << 20  # room for batches; must exceed max_value_bytes
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    redis_timeout: float = 2.0  # upper bound of one Redis round trip when the RPC has no deadline
    health_interval: float = 1.0
    max_key_bytes: int = 1024
    max_value_bytes: int = 1 << 20
    max_batch: int = 1000
    min_ttl: float = 0.001
    max_ttl: float = 30 * 86400.0
    default_ttl: float = 3600.0
    tombstone_ttl: float = 3600.0  # how long a deleted cache key remembers its last version
    tenant: str = "default"
    ratelimit_policies: str = ""  # path of the rate limit policy file (YAML); empty: no named policies
    ratelimit_timeout: float = 0.25  # longest wait for Redis in a rate limit Check before failing open/closed
    ratelimit_deny_cache: bool = False  # answer repeated checks of a key denied until T from memory until T
    session_max_attributes_bytes: int = 64 * 1024  # names plus values of one session's attributes
    session_default_idle: float = 1800.0  # idle (sliding) timeout when Create gives none
    session_default_absolute: float = 12 * 3600.0  # absolute timeout when Create gives none
    session_touch_interval: float = 60.0  # a touch rewrites Redis at most this often (or idle/20)
    session_default_grace: float = 30.0  # how long a rotated-out token keeps working by default
    session_max_grace: float = 300.0  # longest grace a Rotate may ask for
    session_max_per_subject: int = 1000  # highest max_sessions a Create may ask for
    session_tombstone_ttl: float = 300.0  # how long an ended session still reports why it ended

    events_max_length: int = 100_000  # approximate most events one topic keeps
    events_max_age: float = 7 * 86400.0  # longest time an event is kept; also an idle topic's lifetime
    events_dedup_window: float = 120.0  # how long a publish dedup_id is remembered
    events_heartbeat: float = 5.0  # default silence before a subscription gets a Progress frame
    events_subscriber_buffer: int = 1000  # events buffered per subscriber before it is ended as too slow
    events_pattern_refresh: float = 1.0  # how often pattern subscriptions look for new topics
    events_ack_timeout: float = 30.0  # default time a consumed event may stay unacknowledged
    events_max_deliveries: int = 5  # default deliveries before an event is dead-lettered
    lock_default_ttl: float = 30.0  # lease of a lock grant when the request gives no TTL
    lock_history: float = 600.0  # how long ended lock grants are remembered (Release/Extend outcomes)
    lock_waiter_ttl: float = 3.0  # a dead server's lock waiters leave the queue after this
    lock_waiter_heartbeat: float = 1.0  # how often a server renews its lock waiters (< waiter TTL)
    lock_fallback: float = 5.0  # longest a waiter sleeps without a wake-up before it looks again
    event_loop: str = "uvloop"  # the server's event loop: uvloop, or asyncio's own
    redis_coalesce: bool = True  # scripts share one pipelined connection (single node) / pipelines (cluster)
    workers: int = 1  # server processes sharing the listen port (SO_REUSEPORT)

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    def validate(self) -> Settings:
        """Check cross-field rules; returns self so calls chain."""
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"log level: {self.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
        if ":" not in self.listen:
            raise ConfigError(f"listen: {self.listen!r} must be host:port")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis url: {self.redis_url!r} must start with redis://, rediss:// or unix://")
        if self.redis_cluster and self.redis_url.startswith("unix://"):
            raise ConfigError("redis cluster: a cluster seed must be a redis:// or rediss:// URL")
        if self.redis_cluster and self.embedded:
            raise ConfigError("redis cluster: COORD_REDIS_CLUSTER=1 needs COORD_REDIS_URL (a seed node)")
        if not 0 < self.min_ttl <= self.default_ttl <= self.max_ttl:
            raise ConfigError("ttl: need 0 < min ttl <= default ttl <= max ttl")
        for name in ("max_key_bytes", "max_value_bytes", "max_batch", "max_message_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        if self.event_loop not in ("uvloop", "asyncio"):
            raise ConfigError(f"event loop: {self.event_loop!r} is not uvloop or asyncio")
        if self.workers < 1:
            raise ConfigError(f"workers: must be at least 1 (got {self.workers})")
        if self.workers > 1 and self.listen.rsplit(":", 1)[1] == "0":
            raise ConfigError("workers: several workers share one port, so listen needs a fixed port, not 0")
        if self.max_message_bytes < self.max_value_bytes + 64 * 1024:
            raise ConfigError(
                "max message size: must exceed the max value size by at least 64KiB "
                f"(got {self.max_message_bytes} for values of {self.max_value_bytes})"
            )
        return self


# name -> (environment variable, flag, parser, help)
_SPEC: dict[str, tuple[str, str, str]] = {
    "listen": ("COORD_LISTEN", "--listen", "address to serve gRPC on (host:port)"),
    "redis_url": ("COORD_REDIS_URL", "--redis-url", "Redis URL; empty starts an embedded redis-server"),
    "redis_cluster": (
        "COORD_REDIS_CLUSTER",
        "--redis-cluster",
        "treat the URL as a Redis Cluster seed (1/0)",
    ),
    "data_dir": ("COORD_DATA_DIR", "--data-dir", "directory of the embedded Redis (created 0700)"),
    "max_message_bytes": ("COORD_MAX_MESSAGE_SIZE", "--max-message-size", "largest gRPC message"),
    "shutdown_grace": ("COORD_SHUTDOWN_GRACE", "--shutdown-grace", "time in-flight RPCs get on shutdown"),
    "log_level": ("COORD_LOG_LEVEL", "--log-level", "DEBUG, INFO, WARNING or ERROR"),
    "redis_timeout": ("COORD_REDIS_TIMEOUT", "--redis-timeout", "longest wait for one Redis call"),
    "health_interval": ("COORD_HEALTH_INTERVAL", "--health-interval", "how often Redis is probed"),
    "max_key_bytes": ("COORD_MAX_KEY_SIZE", "--max-key-size", "longest key, in bytes"),
    "max_value_bytes": ("COORD_MAX_VALUE_SIZE", "--max-value-size", "largest value"),
    "max_batch": ("COORD_MAX_BATCH", "--max-batch", "most items in one batch request"),
    "min_ttl": ("COORD_MIN_TTL", "--min-ttl", "shortest TTL accepted"),
    "max_ttl": ("COORD_MAX_TTL", "--max-ttl", "longest TTL accepted"),
    "default_ttl": ("COORD_DEFAULT_TTL", "--default-ttl", "TTL used when a request gives none"),
    "tombstone_ttl": ("COORD_TOMBSTONE_TTL", "--tombstone-ttl", "how long deleted keys keep their version"),
    "ratelimit_policies": (
        "COORD_RATELIMIT_POLICIES",
        "--ratelimit-policies",
        "rate limit policy file (YAML), reloaded on SIGHUP",
    ),
    "ratelimit_timeout": (
        "COORD_RATELIMIT_TIMEOUT",
        "--ratelimit-timeout",
        "longest wait for Redis in a rate limit check before its rules fail open or closed",
    ),
    "ratelimit_deny_cache": (
        "COORD_RATELIMIT_DENY_CACHE",
        "--ratelimit-deny-cache",
        "remember exact denials and answer repeated checks of a denied key without Redis until its "
        "retry_after (a Reset through another server is seen only then) (1/0)",
    ),
    "session_max_attributes_bytes": (
        "COORD_SESSION_MAX_ATTRIBUTES_SIZE",
        "--session-max-attributes-size",
        "largest total of one session's attribute names and values",
    ),
    "session_default_idle": ("COORD_SESSION_IDLE", "--session-idle", "default session idle timeout"),
    "session_default_absolute": (
        "COORD_SESSION_ABSOLUTE",
        "--session-absolute",
        "default session absolute timeout",
    ),
    "session_touch_interval": (
        "COORD_SESSION_TOUCH_INTERVAL",
        "--session-touch-interval",
        "longest time a session touch may be skipped (throttle)",
    ),
    "session_default_grace": (
        "COORD_SESSION_GRACE",
        "--session-grace",
        "default time a rotated-out session token keeps working",
    ),
    "session_max_grace": ("COORD_SESSION_MAX_GRACE", "--session-max-grace", "longest rotation grace"),
    "session_max_per_subject": (
        "COORD_SESSION_MAX_PER_SUBJECT",
        "--session-max-per-subject",
        "highest per-subject session limit a Create may ask for",
    ),
    "session_tombstone_ttl": (
        "COORD_SESSION_TOMBSTONE_TTL",
        "--session-tombstone-ttl",
        "how long an ended session still reports why it ended",
    ),
    "events_max_length": ("COORD_EVENTS_MAX_LENGTH", "--events-max-length", "most events one topic keeps"),
    "events_max_age": ("COORD_EVENTS_MAX_AGE", "--events-max-age", "longest time an event is kept"),
    "events_dedup_window": (
        "COORD_EVENTS_DEDUP_WINDOW",
        "--events-dedup-window",
        "how long a publish dedup id is remembered",
    ),
    "events_heartbeat": ("COORD_EVENTS_HEARTBEAT", "--events-heartbeat", "default Progress interval"),
    "events_subscriber_buffer": (
        "COORD_EVENTS_SUBSCRIBER_BUFFER",
        "--events-subscriber-buffer",
        "events buffered per subscriber before it is ended as too slow",
    ),
    "events_pattern_refresh": (
        "COORD_EVENTS_PATTERN_REFRESH",
        "--events-pattern-refresh",
        "how often pattern subscriptions look for new topics",
    ),
    "events_ack_timeout": ("COORD_EVENTS_ACK_TIMEOUT", "--events-ack-timeout", "default Consume ack timeout"),
    "events_max_deliveries": (
        "COORD_EVENTS_MAX_DELIVERIES",
        "--events-max-deliveries",
        "default deliveries before an event is dead-lettered",
    ),
    "lock_default_ttl": ("COORD_LOCK_DEFAULT_TTL", "--lock-default-ttl", "lock lease when none is given"),
    "lock_history": ("COORD_LOCK_HISTORY", "--lock-history", "how long ended lock grants are remembered"),
    "lock_waiter_ttl": (
        "COORD_LOCK_WAITER_TTL",
        "--lock-waiter-ttl",
        "how long the queue entry of a lock waiter outlives its server's last heartbeat",
    ),
    "lock_waiter_heartbeat": (
        "COORD_LOCK_WAITER_HEARTBEAT",
        "--lock-waiter-heartbeat",
        "how often a server renews its lock waiters' queue entries",
    ),
    "lock_fallback": (
        "COORD_LOCK_FALLBACK",
        "--lock-fallback",
        "longest a lock waiter sleeps without a wake-up before it looks again",
    ),
    "event_loop": ("COORD_EVENT_LOOP", "--event-loop", "event loop of the server: uvloop or asyncio"),
    "redis_coalesce": (
        "COORD_REDIS_COALESCE",
        "--redis-coalesce",
        "pipeline concurrent requests' Redis scripts: one shared connection on a single node, "
        "coalesced pipelines on a cluster (1/0)",
    ),
    "workers": ("COORD_WORKERS", "--workers", "server processes sharing the listen port (SO_REUSEPORT)"),
}

_DURATIONS = {
    "shutdown_grace",
    "redis_timeout",
    "health_interval",
    "min_ttl",
    "max_ttl",
    "default_ttl",
    "tombstone_ttl",
    "ratelimit_timeout",
    "session_default_idle",
    "session_default_absolute",
    "session_touch_interval",
    "session_default_grace",
    "session_max_grace",
    "session_tombstone_ttl",
    "events_max_age",
    "events_dedup_window",
    "events_heartbeat",
    "events_pattern_refresh",
    "events_ack_timeout",
    "lock_default_ttl",
    "lock_history",
    "lock_waiter_ttl",
    "lock_waiter_heartbeat",
    "lock_fallback",
}
_SIZES = {"max_message_bytes", "max_value_bytes", "max_key_bytes", "session_max_attributes_bytes"}
_EVENTS_INTS = {"events_max_length", "events_subscriber_buffer", "events_max_deliveries"}


def _convert(name: str, raw: str, label: str) -> object:
    if name in _DURATIONS:
        return parse_duration(raw, label)
    if name in _SIZES:
        return parse_size(raw, label)
    if name in ("max_batch", "session_max_per_subject", "workers") or name in _EVENTS_INTS:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{label}: {raw!r} is not a whole number") from None
    if name in ("redis_cluster", "redis_coalesce", "ratelimit_deny_cache"):
        return _parse_bool(raw, label)
    if name == "data_dir":
        return Path(raw)
    return raw


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coord-server", description="Run the Coord gRPC server.")
    for name, (env, flag, text) in _SPEC.items():
        parser.add_argument(flag, dest=name, default=None, help=f"{text} [env {env}]")
    return parser


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``environ`` (default ``os.environ``) overlaid with flags from ``argv``."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values: dict[str, object] = {}
    known = {f.name for f in fields(Settings)}
    for name, (var, flag, _) in _SPEC.items():
        assert name in known
        flag_value = getattr(args, name)
        if flag_value is not None:
            values[name] = _convert(name, flag_value, flag)
        elif env.get(var) not in (None, ""):
            values[name] = _convert(name, env[var], var)
    return Settings(**values).validate()  # type: ignore[arg-type]
