"""The service on a server like ``make run``'s: listed and described by reflection, answering
through the generated stubs with no configuration, its counters under the caller's tenant, and
envoyproxy/ratelimit's statistics as Prometheus counters."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import CoordThread, CoordUnderTest, free_port
from .examples import EXAMPLES
from .helpers import OK, Rls, d, no_limit, statuses, write

SERVICE = "envoy.service.ratelimit.v3.RateLimitService"


def test_reflection_lists_and_describes_the_service(coord: CoordUnderTest) -> None:
    with grpc.insecure_channel(coord.target) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        assert SERVICE in set(db.get_services())
        pool = descriptor_pool.DescriptorPool(db)
        method = pool.FindServiceByName(SERVICE).FindMethodByName("ShouldRateLimit")
        assert method.input_type.full_name == "envoy.service.ratelimit.v3.RateLimitRequest"
        assert method.output_type.full_name == "envoy.service.ratelimit.v3.RateLimitResponse"
        descriptor = method.input_type.fields_by_name["descriptors"].message_type
        assert descriptor.full_name == "envoy.extensions.common.ratelimit.v3.RateLimitDescriptor"
        # Envoy's field numbers: what Envoy sends is what Coord reads.
        assert {f.name: f.number for f in descriptor.fields} == {"entries": 1, "limit": 2, "hits_addend": 3}
        headers = method.output_type.fields_by_name["response_headers_to_add"].message_type
        assert headers.full_name == "envoy.config.core.v3.HeaderValue"


def test_without_a_config_every_descriptor_is_ok(coord: CoordUnderTest) -> None:
    rls = Rls(coord.target)
    try:
        reply = rls("envoy", d(("remote_address", "10.0.0.1")), d(("path", "/"), ("method", "GET")))
        assert reply.overall_code == OK and statuses(reply) == [no_limit(), no_limit()]
    finally:
        rls.close()


def test_counters_live_under_the_tenant_with_the_domain_as_hash_tag(
    coord_single: CoordUnderTest, start_coord: Callable[..., CoordThread], tmp_path: Path
) -> None:
    folder = write(tmp_path / "conf", {"messaging.yaml": EXAMPLES["messaging"]})
    server = start_coord(coord_single.backing.url, envoy_ratelimit_config=str(folder), tenant="acme")
    rls = Rls(server.target)
    try:
        rls("messaging", d(("message_type", "marketing"), ("to_number", "206")), d(("to_number", "206")))
    finally:
        rls.close()
    with coord_single.backing.client() as client:
        keys = sorted(k.decode() for k in client.keys("*"))
    assert keys == [
        "coord:acme:envoy:{messaging}:f86400:12:message_type:9:marketing:9:to_number:3:206",
        "coord:acme:envoy:{messaging}:f86400:9:to_number:3:206",
    ]


def _samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def test_the_reference_statistics_per_rule(
    coord_single: CoordUnderTest, start_coord: Callable[..., CoordThread], tmp_path: Path
) -> None:
    names = ("messaging", "example6", "example8")
    folder = write(tmp_path / "conf", {f"{n}.yaml": EXAMPLES[n] for n in names})
    port = free_port()
    server = start_coord(
        coord_single.backing.url, envoy_ratelimit_config=str(folder), metrics_listen=f"127.0.0.1:{port}"
    )
    rls = Rls(server.target)
    shadow = d(("service", "auth-service"), ("user", "user-a"))  # 10/s, shadow_mode
    try:
        for _ in range(7):  # 5 allowed (the 5th past 80% of 5), 2 over
            rls("messaging", d(("message_type", "marketing"), ("to_number", "1")))
        rls("example6", shadow, hits=12)  # over: 12 hits in shadow mode
        rls("example8", d(("key1", "a")), hits=3)
        rls("example8", d(("key1", "b")))
        write(folder, {"example8.yaml": "domain: example8\ndescriptors:\n  - key: [\n"})
        assert server.app is not None
        server.run(_reload(server))
    finally:
        rls.close()
    found = _samples(port)

    def stat(name: str, domain: str, descriptor: str) -> float:
        labels = frozenset({"domain": domain, "descriptor": descriptor}.items())
        return found.get((f"coord_envoy_ratelimit_{name}_total", labels), 0.0)

    marketing = ("messaging", "message_type_marketing.to_number")
    assert [stat(s, *marketing) for s in ("total_hits", "within_limit", "over_limit", "near_limit")] == [
        7,
        5,
        2,
        1,
    ]
    user_a = ("example6", "service.user_user-a")
    assert [stat(s, *user_a) for s in ("total_hits", "over_limit", "shadow_mode")] == [12, 12, 12]
    # detailed_metric: one series per value
    assert stat("total_hits", "example8", "key1_a") == 3 and stat("total_hits", "example8", "key1_b") == 1
    assert found[("coord_envoy_ratelimit_config_loads_total", frozenset({("result", "refused")}))] == 1


async def _reload(server: CoordThread) -> None:
    assert server.app is not None
    server.app.reload()
