"""Server settings: one frozen object built from ``COORD_*`` environment variables and flags.

Each field of :class:`Settings` declares, once, its environment variable, its help text and how its
text is read; the flag (``COORD_MAX_BATCH`` -> ``--max-batch``), the argument parser, the loader and
``docs/configuration.md`` (``python -m coord_server.config --markdown``) all come from that.

A flag wins over its environment variable, which wins over the default. Durations use Coord's one
duration syntax (:func:`coord_client._convert.parse_duration`: ``250ms``, ``10s``, ``1h30m``, ``1d``
or bare seconds) and must be longer than zero unless the setting says what 0 means.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from coord_client import _convert

from .redact import redact_url, url_has_password
from .sentinel_url import SCHEME as SENTINEL_SCHEME
from .sentinel_url import TLS_SCHEME as SENTINEL_TLS_SCHEME
from .sentinel_url import is_sentinel_url, parse_sentinel_url

T = TypeVar("T")
Kind = Literal["text", "bool", "int", "size", "duration", "path"]

# kb/mb/gb as Redis reads them in redis.conf (maxmemory 512mb): powers of 1024.
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kib|mib|gib|kb|mb|gb|k|m|g)?\s*$", re.IGNORECASE)
_UNIT_BYTES = {"b": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}
_UNIT_BYTES.update(kb=1024, mb=1 << 20, gb=1 << 30)
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The JWT algorithms PyJWT verifies ("none" is deliberately absent: unsigned tokens are never accepted).
_JWT_ALGORITHMS = (
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES256K", "ES384", "ES512", "ES521", "EdDSA",
)  # fmt: skip
_REFLECTION = ("auto", "on", "off")
# Each namespace of a key is one more Redis read on every Get of it: a bound on the settable depth.
_MAX_PREFIX_DEPTH = 16
_TRACING = ("auto", "on", "off")
# gRPC channel arguments are C ints: the connection limits (durations in ms) must fit in one.
_GRPC_INT_MAX = 2**31 - 1
_METAVARS: dict[Kind, str] = {
    "text": "TEXT",
    "bool": "0|1",
    "int": "N",
    "size": "SIZE",
    "duration": "DURATION",
    "path": "PATH",
}


class ConfigError(ValueError):
    """The configuration is wrong: a setting has a value the server cannot use (the message names
    it), or a file a setting names cannot be used. ``python -m coord_server`` exits with status 2
    on it, whether it is found while reading the settings or while starting the services."""


def parse_duration(text: str, name: str, *, allow_zero: bool = False) -> float:
    """``text`` in Coord's duration syntax, as seconds, or a ConfigError naming ``name``."""
    try:
        return _convert.parse_duration(text, allow_zero=allow_zero)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


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


def _parse_int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a whole number") from None


def format_duration(seconds: float) -> str:
    """``seconds`` in the duration syntax, largest units first (``1800`` -> ``30m``, ``90`` -> ``1m30s``)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_size(size: int) -> str:
    """``size`` in the size syntax: whole GiB, MiB or KiB where it is one, else bytes."""
    for unit, bytes_ in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size and size % bytes_ == 0:
            return f"{size // bytes_}{unit}"
    return str(size)


# The most COORD_CACHE_PUSH_VALUE_MAX may be: every subscribed server receives each pushed value.
MAX_PUSH_VALUE = 64 << 10


@dataclass(frozen=True)
class Spec:
    """How one setting is named, read and documented (the ``metadata`` of its Settings field)."""

    env: str
    help: str
    kind: Kind
    zero: str = ""  # durations: what 0 means; empty when 0 is refused

    @property
    def flag(self) -> str:
        return "--" + self.env.removeprefix("COORD_").lower().replace("_", "-")

    @property
    def meaning(self) -> str:
        return f"{self.help} (0: {self.zero})" if self.zero else self.help

    def parse(self, raw: str, label: str) -> Any:
        """``raw`` (from the environment or a flag) as this setting's value; ConfigError names ``label``."""
        if self.kind == "duration":
            return parse_duration(raw, label, allow_zero=bool(self.zero))
        if self.kind == "size":
            return parse_size(raw, label)
        if self.kind == "int":
            return _parse_int(raw, label)
        if self.kind == "bool":
            return _parse_bool(raw, label)
        if self.kind == "path":
            return Path(raw)
        return raw

    def show(self, value: Any) -> str:
        """``value`` as it would be written in the environment (for --help and the docs)."""
        if self.kind == "duration":
            return format_duration(value)
        if self.kind == "size":
            return format_size(value)
        if self.kind == "bool":
            return "1" if value else "0"
        return str(value)


def setting(default: T, env: str, help: str, kind: Kind, *, zero: str = "") -> T:
    """A Settings field: its default, environment variable, help text and kind, written once."""
    if not env.startswith("COORD_") or (zero and kind != "duration"):
        raise ValueError(f"{env}: variables start with COORD_, and only durations say what 0 means")
    spec = Spec(env, help, kind, zero)
    return field(default=default, metadata={"spec": spec})


def text(default: str, env: str, help: str) -> str:
    return setting(default, env, help, "text")


def boolean(default: bool, env: str, help: str) -> bool:
    return setting(default, env, help, "bool")


def whole(default: int, env: str, help: str) -> int:
    return setting(default, env, help, "int")


def size(default: int, env: str, help: str) -> int:
    return setting(default, env, help, "size")


def path(default: Path, env: str, help: str) -> Path:
    return setting(default, env, help, "path")


def duration(default: float, env: str, help: str, *, zero: str = "") -> float:
    """A duration setting; ``zero`` says what 0 means, and 0 is refused when it is empty."""
    return setting(default, env, help, "duration", zero=zero)


@dataclass(frozen=True)
class Settings:
    """Everything the server is configured with. Built once at start; never mutated."""

    # -- the server ----------------------------------------------------------------------------
    listen: str = text("127.0.0.1:50051", "COORD_LISTEN", "gRPC address (host:port; port 0 picks a free one)")
    redis_url: str = text(
        "",
        "COORD_REDIS_URL",
        "redis://, rediss://, unix:// or redis+sentinel://h1:26379,h2:26379/service URL of Redis; "
        "empty starts an embedded redis-server",
    )
    redis_cluster: bool = boolean(
        False, "COORD_REDIS_CLUSTER", "1: the URL is a seed node of a Redis Cluster"
    )
    # Like every helper here, path() returns a dataclasses.Field; ruff cannot tell that Path is immutable.
    data_dir: Path = path(  # noqa: RUF009
        Path(".coord"), "COORD_DATA_DIR", "directory of the embedded Redis (created 0700)"
    )
    embedded_maxmemory: int = size(
        0,
        "COORD_EMBEDDED_MAXMEMORY",
        "maxmemory of the embedded Redis (512MiB, 2g...), which always runs with maxmemory-policy "
        "noeviction: past it writes fail with RESOURCE_EXHAUSTED; 0: no limit",
    )
    cache_redis_url: str = text(
        "",
        "COORD_CACHE_REDIS_URL",
        "a Redis of the cache service's own (redis://, rediss://, unix://), which may evict (allkeys-lru); "
        "empty: the cache keeps its entries in COORD_REDIS_URL's Redis with the other services",
    )
    cache_redis_cluster: bool = boolean(
        False, "COORD_CACHE_REDIS_CLUSTER", "1: COORD_CACHE_REDIS_URL is a seed node of a Redis Cluster"
    )
    cache_redis_password_file: str = text(
        "", "COORD_CACHE_REDIS_PASSWORD_FILE", "file holding the password of COORD_CACHE_REDIS_URL's Redis"
    )
    allow_eviction: bool = boolean(
        False,
        "COORD_ALLOW_EVICTION",
        "1: start even when Redis's maxmemory-policy may evict Coord's keys (locks, sessions, events); "
        "otherwise any policy but noeviction stops the server at start (docs/operations.md)",
    )
    max_message_bytes: int = size(
        4 << 20,
        "COORD_MAX_MESSAGE_SIZE",
        "largest gRPC message in or out; at least the max value size plus 64KiB",
    )
    shutdown_grace: float = duration(
        10.0,
        "COORD_SHUTDOWN_GRACE",
        "time in-flight calls get after SIGTERM/SIGINT; open streams are ended at once",
        zero="cancel the calls at once",
    )
    log_level: str = text("INFO", "COORD_LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR or CRITICAL")
    access_log: bool = boolean(
        False, "COORD_ACCESS_LOG", "log one INFO line per RPC (method, code, duration, tenant, peer)"
    )
    log_format: str = text(
        "text", "COORD_LOG_FORMAT", "text, or json: one JSON object per line (time, level, message, RPC)"
    )
    redis_timeout: float = duration(
        2.0, "COORD_REDIS_TIMEOUT", "longest wait for one Redis call (the RPC deadline bounds it further)"
    )
    health_interval: float = duration(
        1.0, "COORD_HEALTH_INTERVAL", "how often Redis is probed for the health status"
    )
    tenant: str = text(
        "default",
        "COORD_TENANT",
        "the tenant part of every Redis key (coord:TENANT:SERVICE:...), so that servers of different tenants "
        "can share one Redis; 1-64 of A-Z a-z 0-9 _ . -",
    )
    event_loop: str = text("uvloop", "COORD_EVENT_LOOP", "the server's event loop: uvloop or asyncio")
    redis_coalesce: bool = boolean(
        True,
        "COORD_REDIS_COALESCE",
        "1: concurrent requests' Redis scripts share one pipelined connection (single node) or coalesced "
        "pipelines (cluster)",
    )
    workers: int = whole(
        1,
        "COORD_WORKERS",
        "server processes sharing the listen port (SO_REUSEPORT); above 1 this one supervises",
    )
    metrics_listen: str = text(
        "",
        "COORD_METRICS_LISTEN",
        "host:port serving Prometheus /metrics (e.g. 127.0.0.1:9464; with workers, the supervisor serves "
        "all of them merged); empty: no metrics",
    )
    tracing: str = text(
        "auto",
        "COORD_TRACING",
        "OpenTelemetry tracing: on, off, or auto (on when OTEL_TRACES_EXPORTER names an exporter, not none); "
        "the OTEL_* variables configure it (docs/operations.md, Tracing)",
    )

    # -- client connections: what one connection may hold, and for how long --------------------
    # High enough for a process holding thousands of subscriptions on one channel, low enough that
    # one connection cannot open streams without bound (each holds buffers on the server).
    max_concurrent_streams: int = whole(
        10_000,
        "COORD_MAX_CONCURRENT_STREAMS",
        "most calls and streams open at once on one client connection (HTTP/2 "
        "SETTINGS_MAX_CONCURRENT_STREAMS); a client queues the rest or sees them refused with UNAVAILABLE, "
        "never applied (0: no limit)",
    )
    max_connection_age: float = duration(
        1800.0,
        "COORD_MAX_CONNECTION_AGE",
        "a client connection older than this (±10%) is asked to reconnect (HTTP/2 GOAWAY): its new calls "
        "go to a new connection, so clients spread again over servers",
        zero="no limit",
    )
    max_connection_age_grace: float = duration(
        0.0,
        "COORD_MAX_CONNECTION_AGE_GRACE",
        "how long the calls open on a connection past its age may go on before they are cancelled",
        zero="no limit, they run to their end",
    )
    max_connection_idle: float = duration(
        3600.0,
        "COORD_MAX_CONNECTION_IDLE",
        "a client connection with no call open for this long is closed (GOAWAY); the client reconnects "
        "on its next call",
        zero="never",
    )
    min_ping_interval: float = duration(
        5.0,
        "COORD_MIN_PING_INTERVAL",
        "shortest time between a client's keepalive pings while the server sends it nothing; each "
        "earlier ping is a strike",
    )
    max_ping_strikes: int = whole(
        2,
        "COORD_MAX_PING_STRIKES",
        "strikes (pings too early) a connection may collect before it is closed with GOAWAY "
        "too_many_pings (0: no limit)",
    )

    # -- security: TLS, identity, tenants (docs/security.md) -----------------------------------
    insecure: bool = boolean(
        False,
        "COORD_INSECURE",
        "1: allow listening beyond loopback without TLS and authentication (logged as a warning)",
    )
    tls_cert: str = text(
        "", "COORD_TLS_CERT", "PEM certificate chain of the server; with COORD_TLS_KEY, serve TLS"
    )
    tls_key: str = text("", "COORD_TLS_KEY", "PEM private key of the server certificate")
    tls_client_ca: str = text(
        "",
        "COORD_TLS_CLIENT_CA",
        "PEM CA bundle: clients must present a certificate it signed (mTLS); empty: no client certificates",
    )
    tls_reload_interval: float = duration(
        10.0,
        "COORD_TLS_RELOAD_INTERVAL",
        "how often the certificate files are checked for a change (SIGHUP reloads them at once)",
        zero="only on SIGHUP",
    )
    auth_file: str = text(
        "",
        "COORD_AUTH_FILE",
        "YAML file of API keys (SHA-256 digests), certificate identities, tenant limits; reloaded on SIGHUP",
    )
    jwt_keys: str = text(
        "",
        "COORD_JWT_KEYS",
        "JWKS file or PEM public key that signs accepted JWT bearer tokens; empty: no JWT",
    )
    jwt_algorithms: str = text(
        "RS256,ES256,EdDSA", "COORD_JWT_ALGORITHMS", "comma-separated JWT algorithms accepted (never none)"
    )
    jwt_issuer: str = text("", "COORD_JWT_ISSUER", "required iss claim of JWTs; empty: not checked")
    jwt_audience: str = text("", "COORD_JWT_AUDIENCE", "required aud claim of JWTs; empty: not checked")
    jwt_leeway: float = duration(
        30.0, "COORD_JWT_LEEWAY", "clock skew allowed when checking exp and nbf", zero="none"
    )
    jwt_tenant_claim: str = text("tenant", "COORD_JWT_TENANT_CLAIM", "JWT claim naming the caller's tenant")
    jwt_allow_claim: str = text(
        "coord_allow",
        "COORD_JWT_ALLOW_CLAIM",
        "JWT claim listing the caller's permissions (as allow: in the auth file)",
    )
    reflection: str = text(
        "auto",
        "COORD_REFLECTION",
        "serve gRPC reflection: on, off, or auto (on unless authentication is configured)",
    )
    redis_password_file: str = text(
        "",
        "COORD_REDIS_PASSWORD_FILE",
        "file holding the Redis password (the URL then needs none), so no secret is in the environment",
    )
    redis_tls_ca: str = text(
        "", "COORD_REDIS_TLS_CA", "PEM CA bundle that signed the Redis server's certificate (rediss://)"
    )
    redis_tls_cert: str = text(
        "", "COORD_REDIS_TLS_CERT", "PEM client certificate for Redis TLS, when Redis asks for one"
    )
    redis_tls_key: str = text("", "COORD_REDIS_TLS_KEY", "PEM private key of COORD_REDIS_TLS_CERT")
    redis_sentinel_password_file: str = text(
        "",
        "COORD_REDIS_SENTINEL_PASSWORD_FILE",
        "file holding the sentinels' own password (requirepass in sentinel.conf), for a Sentinel URL",
    )
    redis_sentinel_username: str = text(
        "", "COORD_REDIS_SENTINEL_USERNAME", "ACL user to authenticate to the sentinels as with it"
    )

    # -- request limits (every service) and the cache ------------------------------------------
    max_key_bytes: int = size(1024, "COORD_MAX_KEY_SIZE", "longest key, in bytes of UTF-8")
    max_value_bytes: int = size(1 << 20, "COORD_MAX_VALUE_SIZE", "largest cache value or event payload")
    max_batch: int = whole(1000, "COORD_MAX_BATCH", "most items in one batch request")
    min_ttl: float = duration(0.001, "COORD_MIN_TTL", "shortest TTL a request may give")
    max_ttl: float = duration(30 * 86400.0, "COORD_MAX_TTL", "longest TTL a request may give")
    default_ttl: float = duration(
        3600.0, "COORD_DEFAULT_TTL", "TTL of a cache write that gives none: every key has a TTL"
    )
    tombstone_ttl: float = duration(
        3600.0, "COORD_TOMBSTONE_TTL", "how long a deleted cache key remembers its version and fences"
    )
    cache_invalidations: bool = boolean(
        True,
        "COORD_CACHE_INVALIDATIONS",
        "cache writes publish invalidations for near caches (WatchInvalidations); off saves a PUBLISH",
    )
    # Pushed values cost every Coord server subscribed to the tenant's invalidations their bytes, for
    # every Set, watched or not: small values only (a near cache's hot keys are mostly small).
    cache_push_value_max: int = size(
        1024,
        "COORD_CACHE_PUSH_VALUE_MAX",
        "largest Set value sent with its invalidation to the near caches that ask for values, which "
        "then keep it instead of reading it again; 0: invalidations never carry values",
    )
    cache_max_lease: float = duration(
        60.0, "COORD_CACHE_MAX_LEASE", "longest fill lease a GetOrLease may ask for"
    )
    cache_max_tags: int = whole(8, "COORD_CACHE_MAX_TAGS", "most tags one cache entry may carry (Set tags)")
    # Off unless asked: with a delimiter every Set of a key holding it costs one more round trip and
    # every read one more script per namespace, a price only the tenants invalidating by prefix pay.
    cache_prefix_delimiter: str = text(
        "",
        "COORD_CACHE_PREFIX_DELIMITER",
        "the one character that ends a cache key's namespaces (':' makes user:42: a namespace of "
        "user:42:name) for InvalidatePrefix; empty (the default): keys have none, reads and writes "
        "check none, InvalidatePrefix is refused",
    )
    cache_min_prefix: int = whole(
        3,
        "COORD_CACHE_MIN_PREFIX",
        "shortest prefix InvalidatePrefix takes, in characters (delimiter included)",
    )
    cache_prefix_depth: int = whole(
        4,
        "COORD_CACHE_PREFIX_DEPTH",
        "most delimiters a namespace holds: a read checks at most this many namespaces of its key",
    )

    # -- collections (maps, lists, sets, sorted sets) ------------------------------------------
    collection_max_elements: int = whole(
        100_000,
        "COORD_COLLECTION_MAX_ELEMENTS",
        "most elements (fields, values, members) one collection may hold; a write past it is refused",
    )
    list_waiter_ttl: float = duration(
        3.0, "COORD_LIST_WAITER_TTL", "a dead server's waiting list Pops leave the queue after this"
    )
    list_waiter_heartbeat: float = duration(
        1.0, "COORD_LIST_WAITER_HEARTBEAT", "how often a server renews its waiting list Pops; below the TTL"
    )

    # -- rate limit ----------------------------------------------------------------------------
    ratelimit_policies: str = text(
        "",
        "COORD_RATELIMIT_POLICIES",
        "rate limit policy file (YAML), reloaded on SIGHUP; empty: no named policies",
    )
    ratelimit_timeout: float = duration(
        0.25,
        "COORD_RATELIMIT_TIMEOUT",
        "longest wait for Redis in a rate limit check before its rules fail open or closed",
    )
    ratelimit_deny_cache: bool = boolean(
        False,
        "COORD_RATELIMIT_DENY_CACHE",
        "1: remember exact denials and answer repeated checks of a denied key without Redis until its "
        "retry_after (a Reset through another server is seen only then)",
    )

    # -- Envoy's rate limit service (docs/envoy.md) --------------------------------------------
    envoy_ratelimit_config: str = text(
        "",
        "COORD_ENVOY_RATELIMIT_CONFIG",
        "envoyproxy/ratelimit YAML for envoy.service.ratelimit.v3.RateLimitService: a file or a folder of "
        ".yaml/.yml files, reloaded on SIGHUP; empty: every descriptor is OK, as for an unknown domain",
    )
    envoy_ratelimit_headers: bool = boolean(
        False,
        "COORD_ENVOY_RATELIMIT_HEADERS",
        "1: ShouldRateLimit adds RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset to "
        "response_headers_to_add (envoyproxy/ratelimit's LIMIT_RESPONSE_HEADERS_ENABLED)",
    )
    envoy_ratelimit_failure_mode: str = text(
        "error",
        "COORD_ENVOY_RATELIMIT_FAILURE_MODE",
        "ShouldRateLimit's answer when Redis cannot decide within COORD_RATELIMIT_TIMEOUT: error "
        "(UNAVAILABLE: Envoy's failure_mode_deny decides), deny (OVER_LIMIT) or allow (OK)",
    )

    # -- session -------------------------------------------------------------------------------
    session_max_attributes_bytes: int = size(
        64 * 1024,
        "COORD_SESSION_MAX_ATTRIBUTES_SIZE",
        "largest total of one session's attribute names and values",
    )
    session_default_idle: float = duration(
        1800.0, "COORD_SESSION_IDLE", "idle (sliding) timeout when Create gives none"
    )
    session_default_absolute: float = duration(
        12 * 3600.0,
        "COORD_SESSION_ABSOLUTE",
        "absolute timeout when Create gives none (raised to the idle timeout if shorter)",
    )
    session_touch_interval: float = duration(
        60.0,
        "COORD_SESSION_TOUCH_INTERVAL",
        "a touch rewrites Redis at most this often, or every idle timeout / 20 if that is shorter",
        zero="every touch writes",
    )
    session_default_grace: float = duration(
        30.0,
        "COORD_SESSION_GRACE",
        "how long a rotated-out token keeps working when Rotate gives no grace",
        zero="it stops at once",
    )
    session_max_grace: float = duration(
        300.0,
        "COORD_SESSION_MAX_GRACE",
        "longest grace a Rotate may ask for",
        zero="no grace may be asked for",
    )
    session_max_per_subject: int = whole(
        1000,
        "COORD_SESSION_MAX_PER_SUBJECT",
        "highest per-subject session limit (max_sessions) a Create may ask for",
    )
    session_tombstone_ttl: float = duration(
        300.0,
        "COORD_SESSION_TOMBSTONE_TTL",
        "how long an ended session still reports why it ended",
        zero="it is forgotten at once",
    )

    # -- events --------------------------------------------------------------------------------
    events_max_length: int = whole(
        100_000, "COORD_EVENTS_MAX_LENGTH", "approximate most events one topic keeps"
    )
    events_max_age: float = duration(
        7 * 86400.0, "COORD_EVENTS_MAX_AGE", "longest time an event is kept; also an idle topic's lifetime"
    )
    events_dedup_window: float = duration(
        120.0, "COORD_EVENTS_DEDUP_WINDOW", "how long a publish dedup_id is remembered"
    )
    events_heartbeat: float = duration(
        5.0,
        "COORD_EVENTS_HEARTBEAT",
        "silence before a subscription gets a Progress frame, when it asks for none",
    )
    events_subscriber_buffer: int = whole(
        1000,
        "COORD_EVENTS_SUBSCRIBER_BUFFER",
        "events buffered per subscriber before it is ended as too slow",
    )
    events_pattern_refresh: float = duration(
        1.0, "COORD_EVENTS_PATTERN_REFRESH", "how often pattern subscriptions look for new topics"
    )
    events_ack_timeout: float = duration(
        30.0,
        "COORD_EVENTS_ACK_TIMEOUT",
        "time a consumed event may stay unacknowledged, when Consume gives none",
    )
    events_max_deliveries: int = whole(
        5,
        "COORD_EVENTS_MAX_DELIVERIES",
        "deliveries before an event is dead-lettered, when Consume gives none",
    )
    events_readers: int = whole(
        16,
        "COORD_EVENTS_READERS",
        "most Redis connections per Redis node that read topics live (XREAD BLOCK) for subscribers and "
        "consumers; each reads many topics, and past this bound more topics share each read",
    )
    events_read_streams: int = whole(
        128,
        "COORD_EVENTS_READ_STREAMS",
        "topics one live read (one XREAD) takes before another connection is opened, up to "
        "COORD_EVENTS_READERS",
    )

    # -- lock ----------------------------------------------------------------------------------
    lock_default_ttl: float = duration(
        30.0, "COORD_LOCK_DEFAULT_TTL", "lease of a lock grant when the request gives none"
    )
    lock_history: float = duration(
        600.0,
        "COORD_LOCK_HISTORY",
        "how long ended lock grants are remembered, for the outcomes of Release and Extend",
        zero="not remembered",
    )
    lock_waiter_ttl: float = duration(
        3.0, "COORD_LOCK_WAITER_TTL", "a dead server's lock waiters leave the queue after this"
    )
    lock_waiter_heartbeat: float = duration(
        1.0, "COORD_LOCK_WAITER_HEARTBEAT", "how often a server renews its lock waiters; below the waiter TTL"
    )
    lock_fallback: float = duration(
        5.0, "COORD_LOCK_FALLBACK", "longest a lock waiter sleeps without a wake-up before it looks again"
    )

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert)

    @property
    def auth_enabled(self) -> bool:
        """Callers must authenticate: API keys / certificate identities (auth file) or JWTs."""
        return bool(self.auth_file or self.jwt_keys)

    @property
    def jwt_algorithm_names(self) -> tuple[str, ...]:
        """COORD_JWT_ALGORITHMS as names (``"RS256,ES256"`` -> ``("RS256", "ES256")``)."""
        return tuple(name.strip() for name in self.jwt_algorithms.split(",") if name.strip())

    def validate(self) -> Settings:
        """Check each duration's range and the cross-field rules; returns self so calls chain."""
        for name, spec in specs():
            value = getattr(self, name)
            if spec.kind == "duration" and not (
                math.isfinite(value) and (value > 0 or (value == 0 and spec.zero))
            ):
                least = "0 or longer" if spec.zero else "longer than zero"
                raise ConfigError(f"{spec.env}: must be {least} (got {value!r})")
        self._validate_observability()
        if ":" not in self.listen:
            raise ConfigError(f"listen: {self.listen!r} must be host:port")
        if not _TENANT.fullmatch(self.tenant):  # fullmatch: "$" would let a trailing newline in
            raise ConfigError(f"tenant: {self.tenant!r} must be 1-64 of A-Z a-z 0-9 _ . -")
        schemes = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME, SENTINEL_TLS_SCHEME)
        if self.redis_url and not self.redis_url.startswith(schemes):
            # Redacted: a URL is shown only without its password, even one that cannot be used.
            shown = redact_url(self.redis_url)
            raise ConfigError(
                f"redis url: {shown!r} must start with redis://, rediss://, unix://, {SENTINEL_SCHEME}"
                f" or {SENTINEL_TLS_SCHEME}"
            )
        if is_sentinel_url(self.redis_url):
            try:
                parse_sentinel_url(self.redis_url)  # its messages never quote the password
            except ValueError as exc:
                raise ConfigError(f"redis url: {redact_url(self.redis_url)!r} {exc}") from None
            if self.redis_cluster:
                raise ConfigError("redis cluster: a Sentinel URL names a primary, not a cluster seed")
        if self.redis_cluster and self.redis_url.startswith("unix://"):
            raise ConfigError("redis cluster: a cluster seed must be a redis:// or rediss:// URL")
        if self.redis_cluster and self.embedded:
            raise ConfigError("redis cluster: COORD_REDIS_CLUSTER=1 needs COORD_REDIS_URL (a seed node)")
        if self.list_waiter_heartbeat >= self.list_waiter_ttl:
            raise ConfigError("COORD_LIST_WAITER_HEARTBEAT: must be shorter than COORD_LIST_WAITER_TTL")
        if not 0 < self.min_ttl <= self.default_ttl <= self.max_ttl:
            raise ConfigError("ttl: need 0 < min ttl <= default ttl <= max ttl")
        for name in ("max_key_bytes", "max_value_bytes", "max_batch", "max_message_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        for env, value in (
            ("COORD_EVENTS_READERS", self.events_readers),
            ("COORD_EVENTS_READ_STREAMS", self.events_read_streams),
            ("COORD_COLLECTION_MAX_ELEMENTS", self.collection_max_elements),
            ("COORD_CACHE_MAX_TAGS", self.cache_max_tags),
            ("COORD_CACHE_MIN_PREFIX", self.cache_min_prefix),
            ("COORD_CACHE_PREFIX_DEPTH", self.cache_prefix_depth),
        ):
            if value < 1:
                raise ConfigError(f"{env}: must be at least 1 (got {value})")
        self._validate_connections()
        if self.event_loop not in ("uvloop", "asyncio"):
            raise ConfigError(f"event loop: {self.event_loop!r} is not uvloop or asyncio")
        if self.workers < 1:
            raise ConfigError(f"workers: must be at least 1 (got {self.workers})")
        if self.workers > 1 and self.listen.rsplit(":", 1)[1] == "0":
            raise ConfigError("workers: several workers share one port, so listen needs a fixed port, not 0")
        if bool(self.tls_cert) != bool(self.tls_key):
            missing = "COORD_TLS_KEY" if self.tls_cert else "COORD_TLS_CERT"
            raise ConfigError(f"{missing}: COORD_TLS_CERT and COORD_TLS_KEY go together; set both or neither")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError(
                "COORD_TLS_CLIENT_CA: mTLS needs the server's own COORD_TLS_CERT and COORD_TLS_KEY"
            )
        if self.max_message_bytes < self.max_value_bytes + 64 * 1024:
            raise ConfigError(
                "max message size: must exceed the max value size by at least 64KiB "
                f"(got {self.max_message_bytes} for values of {self.max_value_bytes})"
            )
        self._validate_auth()
        self._validate_redis_access()
        self._validate_cache()
        return self

    def _validate_observability(self) -> None:
        """The log's level and format, and tracing."""
        if self.log_level.upper() not in _LOG_LEVELS:
            raise ConfigError(f"log level: {self.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"COORD_LOG_FORMAT: {self.log_format!r} is not text or json")
        if self.tracing not in _TRACING:
            raise ConfigError(f"COORD_TRACING: {self.tracing!r} is not auto, on or off")

    def _validate_connections(self) -> None:
        """The connection limits become gRPC channel arguments, which are C ints (durations in ms)."""
        env = {name: spec.env for name, spec in specs()}
        for name in ("max_concurrent_streams", "max_ping_strikes"):
            value = getattr(self, name)
            if not 0 <= value <= _GRPC_INT_MAX:
                raise ConfigError(f"{env[name]}: must be 0 (no limit) to {_GRPC_INT_MAX} (got {value})")
        longest = format_duration(_GRPC_INT_MAX / 1000)
        durations = ("max_connection_age", "max_connection_age_grace", "max_connection_idle")
        for name in (*durations, "min_ping_interval"):
            if getattr(self, name) * 1000 > _GRPC_INT_MAX:
                raise ConfigError(f"{env[name]}: must be at most {longest}")

    def _validate_cache(self) -> None:
        self._validate_cache_redis()
        self._validate_cache_prefixes()
        if not 0 <= self.cache_push_value_max <= MAX_PUSH_VALUE:
            raise ConfigError(
                f"COORD_CACHE_PUSH_VALUE_MAX: must be 0 to {format_size(MAX_PUSH_VALUE)} "
                f"(got {self.cache_push_value_max})"
            )

    def _validate_cache_prefixes(self) -> None:
        """COORD_CACHE_PREFIX_*: one delimiter character that a key may hold (or none), and a depth
        that bounds what a read checks (each namespace is one more Redis read)."""
        delimiter = self.cache_prefix_delimiter
        if len(delimiter) > 1 or delimiter in ("\x00", "\n", "\r"):
            raise ConfigError(
                f"COORD_CACHE_PREFIX_DELIMITER: {delimiter!r} must be one character a key may hold "
                "(not NUL, CR or LF), or empty to turn prefix invalidation off"
            )
        if self.cache_prefix_depth > _MAX_PREFIX_DEPTH:
            depth = self.cache_prefix_depth
            raise ConfigError(f"COORD_CACHE_PREFIX_DEPTH: must be at most {_MAX_PREFIX_DEPTH} (got {depth})")

    def _validate_cache_redis(self) -> None:
        """COORD_CACHE_REDIS_*: a plain Redis or Cluster of the cache's own (docs/operations.md)."""
        url = self.cache_redis_url
        if not url:
            if self.cache_redis_cluster or self.cache_redis_password_file:
                given = "CLUSTER" if self.cache_redis_cluster else "PASSWORD_FILE"
                raise ConfigError(f"COORD_CACHE_REDIS_{given}: needs COORD_CACHE_REDIS_URL")
            return
        if not url.startswith(("redis://", "rediss://", "unix://")):
            shown = redact_url(url)
            raise ConfigError(
                f"COORD_CACHE_REDIS_URL: {shown!r} must start with redis://, rediss:// or unix://"
            )
        if self.cache_redis_cluster and url.startswith("unix://"):
            raise ConfigError("COORD_CACHE_REDIS_CLUSTER: a cluster seed must be a redis:// or rediss:// URL")
        if self.cache_redis_password_file and url_has_password(url):
            raise ConfigError(
                "COORD_CACHE_REDIS_PASSWORD_FILE: COORD_CACHE_REDIS_URL has a password too; "
                "keep it only in the file"
            )

    def _validate_redis_access(self) -> None:
        """The Redis password file and TLS files (read and loaded when the backend is built)."""
        tls_files = {
            "COORD_REDIS_TLS_CA": self.redis_tls_ca,
            "COORD_REDIS_TLS_CERT": self.redis_tls_cert,
            "COORD_REDIS_TLS_KEY": self.redis_tls_key,
        }
        given = [env for env, value in tls_files.items() if value]
        if self.embedded and (self.redis_password_file or given):
            setting = "COORD_REDIS_PASSWORD_FILE" if self.redis_password_file else given[0]
            raise ConfigError(f"{setting}: needs COORD_REDIS_URL (the embedded Redis is a private socket)")
        if self.redis_password_file and url_has_password(self.redis_url):
            raise ConfigError(
                "COORD_REDIS_PASSWORD_FILE: the Redis URL has a password too; keep it only in the file"
            )
        if given and not self.redis_url.startswith(("rediss://", SENTINEL_TLS_SCHEME)):
            raise ConfigError(
                f"{given[0]}: needs a rediss:// or {SENTINEL_TLS_SCHEME} COORD_REDIS_URL (TLS to Redis)"
            )
        sentinel = self.redis_sentinel_password_file or self.redis_sentinel_username
        if sentinel and not is_sentinel_url(self.redis_url):
            setting = (
                "COORD_REDIS_SENTINEL_PASSWORD_FILE"
                if self.redis_sentinel_password_file
                else "COORD_REDIS_SENTINEL_USERNAME"
            )
            schemes = f"{SENTINEL_SCHEME} or {SENTINEL_TLS_SCHEME}"
            raise ConfigError(f"{setting}: needs a {schemes} COORD_REDIS_URL")
        if bool(self.redis_tls_cert) != bool(self.redis_tls_key):
            missing = "COORD_REDIS_TLS_KEY" if self.redis_tls_cert else "COORD_REDIS_TLS_CERT"
            raise ConfigError(f"{missing}: COORD_REDIS_TLS_CERT and COORD_REDIS_TLS_KEY go together")

    def _validate_auth(self) -> None:
        """The identity settings (the files they name are checked when the server loads them)."""
        if self.reflection not in _REFLECTION:
            raise ConfigError(f"COORD_REFLECTION: {self.reflection!r} is not auto, on or off")
        for name in self.jwt_algorithm_names:
            if name.lower() == "none":
                raise ConfigError("COORD_JWT_ALGORITHMS: 'none' is never accepted: tokens must be signed")
            if name not in _JWT_ALGORITHMS:
                raise ConfigError(
                    f"COORD_JWT_ALGORITHMS: unknown algorithm {name!r} (known: {', '.join(_JWT_ALGORITHMS)})"
                )
        if self.jwt_keys and not self.jwt_algorithm_names:
            raise ConfigError("COORD_JWT_ALGORITHMS: COORD_JWT_KEYS is set, so it needs an algorithm")
        for env, claim in (
            ("COORD_JWT_TENANT_CLAIM", self.jwt_tenant_claim),
            ("COORD_JWT_ALLOW_CLAIM", self.jwt_allow_claim),
        ):
            if self.jwt_keys and not claim.strip():
                raise ConfigError(f"{env}: must name a claim when COORD_JWT_KEYS is set")


def specs() -> list[tuple[str, Spec]]:
    """Every setting's field name and spec, in the order Settings declares them."""
    return [(f.name, f.metadata["spec"]) for f in fields(Settings)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coord-server", description="Run the Coord gRPC server.")
    defaults = Settings()
    for name, spec in specs():
        shown = spec.show(getattr(defaults, name)) or "empty"
        # argparse %-formats help texts.
        text = f"{spec.meaning} [env {spec.env}, default {shown}]".replace("%", "%%")
        # A switch given alone means 1 (``--insecure``); ``--insecure 0`` still works.
        switch: dict[str, Any] = {"nargs": "?", "const": "1"} if spec.kind == "bool" else {}
        parser.add_argument(
            spec.flag, dest=name, default=None, metavar=_METAVARS[spec.kind], help=text, **switch
        )
    return parser


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``environ`` (default ``os.environ``) overlaid with flags from ``argv``."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for name, spec in specs():
        flag_value = getattr(args, name)
        if flag_value is not None:
            values[name] = spec.parse(flag_value, spec.flag)
        elif env.get(spec.env) not in (None, ""):
            values[name] = spec.parse(env[spec.env], spec.env)
    return Settings(**values).validate()


_MARKDOWN_HEAD = """\
# Configuration

<!-- Generated from server/coord_server/config.py by `python -m coord_server.config --markdown`.
     Edit the settings there and regenerate; a test checks that this file matches. -->

Every setting is an environment variable and a flag of `python -m coord_server` (`--help` lists
them too); a flag wins over the variable, which wins over the default.

- Durations: `250ms`, `10s`, `5m`, `1h30m`, `1d` or a bare number of seconds (the same syntax as
  `coordctl`). A duration must be longer than zero unless its meaning says what 0 does.
- Sizes: `1024` (bytes), `512KiB`, `1MiB` (also `512k`, `512mb`, `2g`: powers of 1024, as in
  `redis.conf`).
- Switches: `1`/`0` (also `true`/`false`, `yes`/`no`, `on`/`off`).

A wrong value stops the server at start with exit status 2 and a message naming the setting.

| variable | flag | default | meaning |
|---|---|---|---|
"""


def markdown() -> str:
    """docs/configuration.md: every setting's variable, flag, default and meaning."""
    defaults = Settings()
    rows = []
    for name, spec in specs():
        shown = spec.show(getattr(defaults, name))
        default = f"`{shown}`" if shown else "*(empty)*"
        meaning = spec.meaning.replace("|", "\\|")
        rows.append(f"| `{spec.env}` | `{spec.flag}` | {default} | {meaning} |\n")
    return _MARKDOWN_HEAD + "".join(rows)


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m coord_server.config --markdown  (prints docs/configuration.md)")
    sys.stdout.write(markdown())
