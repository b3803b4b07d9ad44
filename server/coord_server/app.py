"""Wiring: Redis (embedded or external) -> services -> gRPC server, as one async context.

Start-up: start the embedded Redis if no URL is given, connect, register every service, health and
reflection, bind, serve. Shutdown (the reverse): health NOT_SERVING, refuse new RPCs and let in-flight
ones finish within the grace period, close Redis connections, stop the embedded Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from . import cache, events, lock, ratelimit, session
from .config import Settings
from .embedded import EmbeddedRedis
from .errors import StartupError
from .health import HealthMonitor
from .ratelimit.policies import PolicyRegistry
from .redis import RedisBackend

log = logging.getLogger("coord_server")

# Every service registers itself through one function: (server, redis, settings) -> full service name.
# RateLimit's also takes the policy registry, which the app owns (build_server) and reloads on SIGHUP.
ServiceInstaller = Callable[[grpc.aio.Server, RedisBackend, Settings], str]
SERVICES: tuple[ServiceInstaller, ...] = (
    cache.add_to_server,
    session.add_to_server,
    events.add_to_server,
    lock.add_to_server,
)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Several workers share the port; a single server refuses to share it with a stray one.
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
    ]


@dataclass(frozen=True)
class BuiltServer:
    """A configured, not yet started server and the state the app owns beside it."""

    server: grpc.aio.Server
    health: HealthMonitor
    policies: PolicyRegistry  # the rate limit policies its RateLimitService answers from


def build_server(settings: Settings, redis: RedisBackend) -> BuiltServer:
    """A configured, not yet started server with every service, health and reflection.

    A setting the services cannot use (a policy file with an error...) raises ConfigError.
    """
    server = grpc.aio.server(options=server_options(settings))
    policies = ratelimit.load_policies(settings)
    names = [
        ratelimit.add_to_server(server, redis, settings, policies),
        *(install(server, redis, settings) for install in SERVICES),
    ]
    monitor = HealthMonitor(redis, names, settings.health_interval)
    health_pb2_grpc.add_HealthServicer_to_server(monitor.servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    return BuiltServer(server, monitor, policies)


@dataclass
class RunningServer:
    """What a running Coord exposes to its owner (the CLI entry point or a test)."""

    server: grpc.aio.Server
    port: int
    redis: RedisBackend
    health: HealthMonitor
    embedded: EmbeddedRedis | None
    policies: PolicyRegistry

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reload(self) -> None:
        """What SIGHUP does: re-read the rate limit policy file; a bad one is logged and the old stay."""
        self.policies.reload()


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[RunningServer]:
    """Run Coord for the duration of the ``async with`` block, then shut it down gracefully."""
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if settings.embedded:
        embedded = EmbeddedRedis(settings.data_dir)
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
        )
        built = build_server(settings, redis)
        server, monitor = built.server, built.health
        try:
            port = server.add_insecure_port(settings.listen)
        except RuntimeError as exc:
            raise StartupError(
                f"cannot listen on {settings.listen}: the address is in use or not available here "
                "(set COORD_LISTEN or --listen to another host:port)"
            ) from exc
        await server.start()
        where = "embedded redis-server at " + url if embedded else redis.description
        # Logged before the first probe: health turns SERVING inside it, and whoever waits for
        # SERVING (a supervisor, a test) must find this line already written.
        log.info("Coord listening on %s:%d; Redis: %s", settings.listen.rsplit(":", 1)[0], port, where)
        await monitor.start()
        yield RunningServer(server, port, redis, monitor, embedded, built.policies)
    finally:
        log.info("shutting down: NOT_SERVING, draining in-flight RPCs for up to %gs", settings.shutdown_grace)
        if monitor is not None:
            await monitor.shutting_down()
        if server is not None:
            await server.stop(settings.shutdown_grace)
        if redis is not None:
            await redis.close()
        if embedded is not None:
            await embedded.stop()
        log.info("Coord stopped")


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    # Nothing to reload until the server runs, but an early SIGHUP must not end the process either.
    loop.add_signal_handler(signal.SIGHUP, log.info, "SIGHUP before start-up finished: nothing to reload yet")
    async with running(settings) as app:
        loop.add_signal_handler(signal.SIGHUP, app.reload)  # replaces the handler above
        await stop.wait()


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s", sig.name)
    stop.set()
