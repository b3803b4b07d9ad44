"""Wiring: Redis (embedded or external) -> services -> gRPC server, as one async context.

Start-up: start the embedded Redis if no URL is given, connect, register every service, health and
reflection, bind, serve. Shutdown (the reverse): health NOT_SERVING, end every open stream at once
(telling its client to resume elsewhere, _streams.py), refuse new RPCs and let in-flight calls finish
within the grace period, close Redis connections, stop the embedded Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2

from . import (
    _streams,
    access_log,
    admin,
    auth,
    cache,
    election,
    envoy,
    events,
    lock,
    metrics,
    ratelimit,
    reflection,
    session,
    tracing,
)
from ._grpc import add_service
from .collections import lists, maps, sets, sorted_sets
from .config import Settings
from .embedded import EmbeddedRedis
from .errors import CoordError, StartupError
from .eviction import EvictionCheck
from .health import HealthMonitor
from .ratelimit.policies import PolicyRegistry
from .redis import RedisBackend
from .redis.security import RedisSecurity
from .tls import ServerTLS, check_exposure, server_tls
from .watchdog import ShutdownWatchdog

log = logging.getLogger("coord_server")

# Every service registers itself through one function: (server, redis, settings) -> full service name.
# RateLimit's also takes the policy registry, which the app owns (build_server) and reloads on SIGHUP.
ServiceInstaller = Callable[[grpc.aio.Server, RedisBackend, Settings], str]
# The services on COORD_REDIS_URL's Redis (the cache may have one of its own: build_server).
SERVICES: tuple[ServiceInstaller, ...] = (
    session.add_to_server,
    events.add_to_server,
    lock.add_to_server,
    maps.add_to_server,
    lists.add_to_server,
    sets.add_to_server,
    sorted_sets.add_to_server,
    election.add_to_server,
    admin.add_to_server,
)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The gRPC server's channel arguments: message sizes, and what one client connection may hold
    and for how long (docs/configuration.md, "client connections")."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # The server pings each connection to find dead peers, whether or not a call is open.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Keepalive enforcement: a client pinging more often than this while the server sends nothing
        # collects strikes, and past the last one its connection is closed (GOAWAY too_many_pings).
        ("grpc.http2.min_ping_interval_without_data_ms", _millis(settings.min_ping_interval)),
        ("grpc.http2.max_ping_strikes", settings.max_ping_strikes),  # 0 is gRPC's "no limit" too
        ("grpc.max_connection_age_ms", _millis_or_unlimited(settings.max_connection_age)),
        ("grpc.max_connection_age_grace_ms", _millis_or_unlimited(settings.max_connection_age_grace)),
        ("grpc.max_connection_idle_ms", _millis_or_unlimited(settings.max_connection_idle)),
        # Several workers share the port; a single server refuses to share it with a stray one.
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
    ]
    if settings.max_concurrent_streams:  # unset is gRPC's "no limit"
        options.append(("grpc.max_concurrent_streams", settings.max_concurrent_streams))
    return options


# gRPC reads INT_MAX milliseconds as "no limit" for the connection age, its grace and idleness.
_GRPC_UNLIMITED_MS = 2**31 - 1


def _millis(seconds: float) -> int:
    return round(seconds * 1000)


def _millis_or_unlimited(seconds: float) -> int:
    """A connection limit in ms; 0 (the setting's "no limit") becomes gRPC's own."""
    return _millis(seconds) if seconds else _GRPC_UNLIMITED_MS


@dataclass(frozen=True)
class BuiltServer:
    """A configured, not yet started server and the state the app owns beside it."""

    server: grpc.aio.Server
    health: HealthMonitor
    policies: PolicyRegistry  # the rate limit policies its RateLimitService answers from
    auth: auth.Auth | None = None  # who its callers are, when authentication is on
    envoy: envoy.EnvoyLimits | None = None  # the Envoy rate limit config its RLS answers from


def build_server(
    settings: Settings, redis: RedisBackend, cache_redis: RedisBackend | None = None
) -> BuiltServer:
    """A configured, not yet started server with every service, health, reflection (per
    COORD_REFLECTION) and, when authentication is on, the auth interceptor in front of them.

    A setting the services cannot use (a policy file with an error...) raises ConfigError.
    """
    guard = auth.build(settings)  # None when authentication is off: no interceptor, no per-call cost
    interceptors = [guard.interceptor] if guard is not None else []
    server = grpc.aio.server(interceptors=interceptors, options=server_options(settings))
    metrics.enable(server, settings)  # before the services: each method binds its series (none when off)
    traced = tracing.enable(server, settings)  # likewise: each method binds its span (nothing when off)
    if traced is not None:  # and a span around each script batch, under its RPC's
        redis.script_spans = traced.scripts(redis.address)
    if settings.access_log:
        access_log.attach(server, settings.tenant)  # likewise before the services
    policies = ratelimit.load_policies(settings)
    envoy_limits = envoy.load_config(settings)
    cache_name = cache.add_to_server(server, cache_redis or redis, settings)
    names = [
        cache_name,
        ratelimit.add_to_server(server, redis, settings, policies),
        envoy.add_to_server(server, redis, settings, envoy_limits),
        *(install(server, redis, settings) for install in SERVICES),
    ]
    own = {cache_name: cache_redis} if cache_redis is not None else {}
    monitor = HealthMonitor(redis, names, settings.health_interval, own_redis=own)
    # Registered as Coord's own services are, so that a request they cannot decode is an
    # INVALID_ARGUMENT there too (grpc's add_…_to_server would answer UNKNOWN and log an error).
    add_service(server, monitor.servicer, health_pb2.DESCRIPTOR.services_by_name["Health"])
    if auth.serves_reflection(settings):  # as grpc.reflection.v1 and v1alpha (reflection.py)
        reflection.add_to_server(server, [*names, health.SERVICE_NAME])
    return BuiltServer(server, monitor, policies, guard, envoy=envoy_limits)


@dataclass
class RunningServer:
    """What a running Coord exposes to its owner (the CLI entry point or a test)."""

    server: grpc.aio.Server
    port: int
    redis: RedisBackend
    health: HealthMonitor
    embedded: EmbeddedRedis | None
    policies: PolicyRegistry
    tls: ServerTLS | None = None  # the certificates it serves, when it serves TLS
    auth: auth.Auth | None = None  # its callers' identities and limits, when authentication is on
    metrics_port: int | None = None  # where it serves /metrics (COORD_METRICS_LISTEN), when it does
    envoy: envoy.EnvoyLimits | None = None  # the Envoy rate limit config (COORD_ENVOY_RATELIMIT_CONFIG)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reload(self) -> None:
        """What SIGHUP does: re-read the rate limit policy file, the Envoy rate limit config and the
        TLS certificates; a bad file is logged and the previous one stays."""
        self.policies.reload()
        if self.envoy is not None:
            self.envoy.reload()
        if self.tls is not None:
            self.tls.reload()
        if self.auth is not None:
            self.auth.reload()  # the auth file and JWT keys


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[RunningServer]:
    """Run Coord for the duration of the ``async with`` block, then shut it down gracefully."""
    if check_exposure(settings):  # ConfigError when it may not listen there
        log.warning(
            "--insecure: serving %s without TLS and authentication; anyone who can reach it can use it",
            settings.listen,
        )
    tls = server_tls(settings)  # the certificate files are checked before anything starts
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if settings.embedded:
        embedded = EmbeddedRedis(settings.data_dir, settings.embedded_maxmemory)
        url = await embedded.start()
    redis: RedisBackend | None = None
    server: grpc.aio.Server | None = None
    monitor: HealthMonitor | None = None
    try:
        redis = RedisBackend.from_url(
            url,
            cluster=settings.redis_cluster,
            timeout=settings.redis_timeout,
            coalesce=settings.redis_coalesce,
            security=RedisSecurity(
                password_file=settings.redis_password_file,
                tls_ca=settings.redis_tls_ca,
                tls_cert=settings.redis_tls_cert,
                tls_key=settings.redis_tls_key,
                sentinel_password_file=settings.redis_sentinel_password_file,
                sentinel_username=settings.redis_sentinel_username,
            ),
        )
        cache_redis = _cache_backend(settings)
        if cache_redis is not None:  # closed with the main one, after the calls have drained
            redis.on_close(cache_redis.close)
        built = build_server(settings, redis, cache_redis)
        server, monitor = built.server, built.health
        # Before binding: EvictionPolicyError when Redis may evict Coord's keys; when Redis does not
        # answer yet, the check the health monitor's first good probe runs.
        monitor.gate = await _check_eviction(redis, settings)
        # None when metrics are off; stopped first thing in redis.close().
        exporter = await metrics.start(settings, server, redis, monitor)
        port = _bind(server, settings, tls)
        await server.start()
        where = "embedded redis-server at " + url if embedded else redis.description
        # Logged before the first probe: health turns SERVING inside it, and whoever waits for
        # SERVING (a supervisor, a test) must find this line already written.
        address = settings.listen
        if not address.startswith("unix:"):
            address = f"{address.rsplit(':', 1)[0]}:{port}"
        security = "plaintext" if tls is None else "mTLS" if tls.mutual else "TLS"
        log.info("Coord listening on %s; %s; Redis: %s", address, security, where)
        await monitor.start()
        yield RunningServer(
            server,
            port,
            redis,
            monitor,
            embedded,
            built.policies,
            tls=tls,
            auth=built.auth,
            metrics_port=exporter.port if exporter is not None else None,
            envoy=built.envoy,
        )
    finally:
        log.info("shutting down: NOT_SERVING, draining in-flight RPCs for up to %gs", settings.shutdown_grace)
        if monitor is not None:
            await monitor.shutting_down()
            # One loop turn: health watchers woken by NOT_SERVING send it before their streams end.
            await asyncio.sleep(0)
        if server is not None:
            ended = _streams.of(server).end()  # streams would hold the grace period; calls get it
            if ended:
                log.info("ended %d open streams: their clients resume on another server", ended)
            await server.stop(settings.shutdown_grace)
        if redis is not None:
            await redis.close()
        if embedded is not None:
            await embedded.stop()
        if server is not None:
            await tracing.flush(server)  # the last calls' spans, before the process may exit
        log.info("Coord stopped")


def _cache_backend(settings: Settings) -> RedisBackend | None:
    """The cache's own Redis (COORD_CACHE_REDIS_URL), or None when it shares COORD_REDIS_URL's.

    Not checked for eviction: that Redis holds only cache entries, which an LRU policy may drop.
    The Redis TLS files apply to it when its URL is rediss://.
    """
    if not settings.cache_redis_url:
        return None
    tls = settings.cache_redis_url.startswith("rediss://")
    return RedisBackend.from_url(
        settings.cache_redis_url,
        cluster=settings.cache_redis_cluster,
        timeout=settings.redis_timeout,
        coalesce=settings.redis_coalesce,
        security=RedisSecurity(
            password_file=settings.cache_redis_password_file,
            tls_ca=settings.redis_tls_ca if tls else "",
            tls_cert=settings.redis_tls_cert if tls else "",
            tls_key=settings.redis_tls_key if tls else "",
        ),
    )


def _bind(server: grpc.aio.Server, settings: Settings, tls: ServerTLS | None) -> int:
    """Bind COORD_LISTEN (with TLS when configured); the port bound."""
    try:
        if tls is None:
            return server.add_insecure_port(settings.listen)
        return server.add_secure_port(settings.listen, tls.credentials())
    except RuntimeError as exc:
        raise StartupError(
            f"cannot listen on {settings.listen}: the address is in use or not available here "
            "(set COORD_LISTEN or --listen to another host:port)"
        ) from exc


async def _check_eviction(redis: RedisBackend, settings: Settings) -> Callable[[], Awaitable[bool]] | None:
    """Refuse a Redis that may evict Coord's keys (eviction.py). When Redis does not answer yet, the
    check to run on the health monitor's first probe that reaches it; None when it passed."""
    check = EvictionCheck(redis, settings.allow_eviction)
    try:
        await check.run()
    except CoordError as exc:  # unreachable, loading...: the same call succeeds once it answers
        log.warning("cannot check Redis's maxmemory-policy yet (%s); checking when Redis answers", exc)
        return check.run_deferred
    return None


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    # Nothing to reload until the server runs, but an early SIGHUP must not end the process either.
    loop.add_signal_handler(signal.SIGHUP, log.info, "SIGHUP before start-up finished: nothing to reload yet")
    watchdog = ShutdownWatchdog(settings.shutdown_grace)
    try:
        async with running(settings) as app:
            loop.add_signal_handler(signal.SIGHUP, app.reload)  # replaces the handler above
            await stop.wait()
            watchdog.start()  # from here on the process ends within the grace period and a margin
    finally:
        watchdog.cancel()


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s", sig.name)
    stop.set()
