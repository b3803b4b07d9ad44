"""Two tenants on one Redis, driven three ways, for the isolation suite (test_isolation.py).

A :class:`Deployment` puts tenants ``a`` and ``b`` on one Redis (single node or Cluster) and hands
the suite a :class:`Tenant` for each: a channel whose every call carries that tenant's credential,
with a stub per service.

- ``auth``: one server with ``COORD_AUTH_FILE`` holding an API key per tenant, sent as
  ``authorization: Bearer <key>``. The real path; it needs the authentication layer, and the suite
  skips it (saying why) while the server does not enforce the auth file.
- ``bound``: one server, built here from the same services, whose RPCs a test-only interceptor binds
  to the tenant named in the ``x-coord-test-tenant`` metadata (``tenancy.bind``, what the
  authentication layer does with a verified identity). It proves the per-tenant state of one process
  (stores, event hubs, volatile listeners, lock waiters, deny caches) without depending on auth.
- ``servers``: two servers on the same Redis, started with ``COORD_TENANT=a`` and ``=b``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import grpc

from coord.cache.v1 import cache_pb2, cache_pb2_grpc
from coord.collections.v1 import list_pb2_grpc, map_pb2_grpc, set_pb2_grpc, sorted_set_pb2_grpc
from coord.election.v1 import election_pb2_grpc
from coord.events.v1 import events_pb2_grpc
from coord.lock.v1 import lock_pb2_grpc
from coord.ratelimit.v1 import ratelimit_pb2_grpc
from coord.session.v1 import session_pb2_grpc
from coord_server import cache, ratelimit, tenancy
from coord_server.app import SERVICES, server_options
from coord_server.config import Settings
from coord_server.redis import RedisBackend
from tests.conftest import CoordThread, RedisClusterProcess, RedisProcess, make_settings

TENANTS = ("a", "b")
DRIVERS = ("auth", "bound", "servers")
TENANT_HEADER = "x-coord-test-tenant"

# Settings every deployment of the suite runs with: pattern subscriptions look for new topics often
# (so a window of a few heartbeats spans several registry polls), and denials are remembered (so the
# suite sees that one tenant's remembered denial never answers another tenant's check).
SUITE_SETTINGS: dict[str, Any] = {"events_pattern_refresh": 0.1, "ratelimit_deny_cache": True}


# -- the caller's side ------------------------------------------------------------------------------


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _WithMetadata(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds one tenant's credential to every call of a channel, whatever the stub."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)

    def _details(self, details: Any) -> grpc.ClientCallDetails:
        return _CallDetails(  # type: ignore[return-value]
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


class Tenant:
    """One tenant's view of the deployment: a stub per service, each call with its credential."""

    def __init__(self, name: str, target: str, metadata: Sequence[tuple[str, str]]) -> None:
        self.name = name
        self.prefix = f"coord:{name}:"
        self._channel = grpc.insecure_channel(target)
        channel = grpc.intercept_channel(self._channel, _WithMetadata(metadata))
        self.cache = cache_pb2_grpc.CacheServiceStub(channel)
        self.lock = lock_pb2_grpc.LockServiceStub(channel)
        self.ratelimit = ratelimit_pb2_grpc.RateLimitServiceStub(channel)
        self.session = session_pb2_grpc.SessionServiceStub(channel)
        self.events = events_pb2_grpc.EventsServiceStub(channel)
        self.map = map_pb2_grpc.MapServiceStub(channel)
        self.list = list_pb2_grpc.ListServiceStub(channel)
        self.set = set_pb2_grpc.SetServiceStub(channel)
        self.sorted_set = sorted_set_pb2_grpc.SortedSetServiceStub(channel)
        self.election = election_pb2_grpc.ElectionServiceStub(channel)

    def close(self) -> None:
        self._channel.close()


# -- a server whose RPCs a test interceptor binds to a tenant -------------------------------------------


class _BindTenant(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Test-only stand-in for the authentication layer: binds the tenant named in the metadata.

    The binding lives in the RPC's own task context, as the authentication layer's does.
    """

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        for key, value in details.invocation_metadata or ():
            if key == TENANT_HEADER:
                tenancy.bind(str(value))
        return await continuation(details)


class BoundCoordThread(CoordThread):
    """Coord's services (as ``app.build_server`` registers them) behind :class:`_BindTenant`.

    ``tasks()`` lists the server loop's running tasks; ``leftover`` is what still ran once the server
    had stopped and closed Redis (what a graceful shutdown must leave: nothing).
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.port = 0
        self.leftover: list[str] = []

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        settings = self.settings
        redis = RedisBackend.from_url(
            settings.redis_url,
            cluster=settings.redis_cluster,
            timeout=settings.redis_timeout,
            coalesce=settings.redis_coalesce,
        )
        server = grpc.aio.server(interceptors=[_BindTenant()], options=server_options(settings))
        try:
            cache.add_to_server(server, redis, settings)  # the same Redis (no COORD_CACHE_REDIS_URL)
            ratelimit.add_to_server(server, redis, settings, ratelimit.load_policies(settings))
            for install in SERVICES:
                install(server, redis, settings)
            self.port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            self._ready.set()
            await self._stop.wait()
        finally:
            await server.stop(settings.shutdown_grace)
            await redis.close()
        # RPC tasks server.stop() cancelled end on the next loop iterations: let them (bounded).
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            await asyncio.wait(pending, timeout=10)
        self.leftover = await _running_tasks()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def tasks(self) -> list[str]:
        return list(self.run(_running_tasks()))


async def _running_tasks() -> list[str]:
    """What runs on this loop besides the caller: each task's coroutine, by qualified name."""
    current = asyncio.current_task()
    return sorted(
        getattr(t.get_coro(), "__qualname__", repr(t))
        for t in asyncio.all_tasks()
        if t is not current and not t.done()
    )


# -- deployments ------------------------------------------------------------------------------------


def auth_available() -> bool:
    """Whether this tree has the authentication layer at all (the server may still not enforce it)."""
    return importlib.util.find_spec("coord_server.auth") is not None


def write_auth_file(path: Path) -> dict[str, str]:
    """An auth file (the contract of docs/security.md) with a fresh API key per tenant; the keys."""
    keys = {tenant: secrets.token_urlsafe(32) for tenant in TENANTS}
    entries = [
        {
            "name": f"isolation-{tenant}",
            "sha256": hashlib.sha256(key.encode()).hexdigest(),
            "tenant": tenant,
            "allow": ["*"],
        }
        for tenant, key in keys.items()
    ]
    path.write_text(json.dumps({"api_keys": entries}, indent=2))  # JSON is YAML
    return keys


@dataclass
class Deployment:
    """Tenants ``a`` and ``b`` on one Redis, and the servers serving them."""

    driver: str
    kind: str  # "single" or "cluster"
    backing: RedisProcess | RedisClusterProcess
    a: Tenant
    b: Tenant
    servers: list[CoordThread] = field(default_factory=list)
    channels_before: frozenset[str] = frozenset()  # subscribed before the current scenario began

    @property
    def tenants(self) -> tuple[Tenant, Tenant]:
        return self.a, self.b

    def _nodes(self) -> list[RedisProcess]:
        return self.backing.nodes if isinstance(self.backing, RedisClusterProcess) else [self.backing]

    def flush(self) -> None:
        for node in self._nodes():
            with node.client() as r:
                r.flushall()

    def keys(self) -> list[str]:
        """Every key in the backing Redis (each node of a Cluster)."""
        found: list[str] = []
        for node in self._nodes():
            with node.client() as r:
                found += [k.decode() for k in r.scan_iter(count=1000)]
        return sorted(found)

    def channels(self) -> list[str]:
        """Every Pub/Sub channel with a subscriber, on every node."""
        found: set[str] = set()
        for node in self._nodes():
            with node.client() as r:
                found.update(c.decode() for c in r.pubsub_channels())
        return sorted(found)

    def close(self) -> None:
        for tenant in self.tenants:
            tenant.close()
        for server in self.servers:
            server.stop()


def deploy(
    driver: str, kind: str, backing: RedisProcess | RedisClusterProcess, workdir: Path, **overrides: Any
) -> Deployment:
    """Start ``driver``'s servers on ``backing`` (see the module docstring); the caller closes it."""

    def settings(**more: Any) -> Settings:
        merged = {**SUITE_SETTINGS, **overrides, **more}
        return make_settings(backing.url, cluster=kind == "cluster", **merged)

    servers: list[CoordThread] = []
    try:
        if driver == "servers":
            servers = [CoordThread(settings(tenant=t)).start() for t in TENANTS]
            a, b = (Tenant(t, s.target, ()) for t, s in zip(TENANTS, servers, strict=True))
        elif driver == "bound":
            servers = [BoundCoordThread(settings()).start()]
            a, b = (Tenant(t, servers[0].target, ((TENANT_HEADER, t),)) for t in TENANTS)
        else:
            path = workdir / f"auth-{kind}-{secrets.token_hex(4)}.yaml"
            keys = write_auth_file(path)
            servers = [CoordThread(settings(auth_file=str(path))).start()]
            a, b = (Tenant(t, servers[0].target, (("authorization", f"Bearer {keys[t]}"),)) for t in TENANTS)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return Deployment(driver, kind, backing, a, b, servers)


def enforces_credentials(target: str) -> bool:
    """Whether the server at ``target`` refuses a call that carries no credential."""
    with grpc.insecure_channel(target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        try:
            stub.Get(cache_pb2.GetRequest(key="probe"), timeout=10)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                return True
            raise
    return False


def each_deployment() -> Iterator[tuple[str, str]]:
    for driver in DRIVERS:
        for kind in ("single", "cluster"):
            yield driver, kind
