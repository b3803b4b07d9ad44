"""Health before Redis has ever answered: NOT_SERVING for the server and every service until the
first probe succeeds."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ..conftest import CoordThread, RedisProcess, free_port, make_settings, wait_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def statuses(channel: grpc.Channel, names: list[str]) -> dict[str, str]:
    """Each name's status by name (an RpcError's code name for one the server does not know)."""
    stub = health_pb2_grpc.HealthStub(channel)
    found: dict[str, str] = {}
    for name in names:
        try:
            status = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status
            found[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        except grpc.RpcError as err:
            found[name] = err.code().name
    return found


def test_not_serving_until_redis_first_answers(redis_factory: Callable[..., RedisProcess]) -> None:
    """A Redis that accepts connections but never answers (stopped with SIGSTOP: the kernel still
    completes the handshakes) keeps the first probe pending; meanwhile the server already listens.

    With a 60 s Redis timeout and probe interval, the first probe cannot end before the checks
    below, so what they see is the status before any probe result: NOT_SERVING for "" and for every
    service (the reference servicer alone says SERVING for "" and NOT_FOUND for the services). Once
    Redis runs again, the pending probe is answered and everything turns SERVING.
    """
    backing = redis_factory()
    assert backing.proc is not None
    os.kill(backing.proc.pid, signal.SIGSTOP)
    server = CoordThread(
        make_settings(
            backing.url, listen=f"127.0.0.1:{free_port()}", redis_timeout=60.0, health_interval=60.0
        )
    )
    # start() returns once the first probe has ended, which needs Redis: start it aside.
    starting = threading.Thread(target=server.start, name="coord-start")
    try:
        starting.start()
        target = server.settings.listen
        with grpc.insecure_channel(target) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            listed = ProtoReflectionDescriptorDatabase(channel).get_services()
            services = sorted(s for s in listed if s.startswith("coord."))
            assert len(services) == 11, services  # the ten services and AdminService
            names = ["", *services]
            assert statuses(channel, names) == dict.fromkeys(names, "NOT_SERVING")

            os.kill(backing.proc.pid, signal.SIGCONT)
            wait_for(lambda: statuses(channel, names) == dict.fromkeys(names, "SERVING"), "SERVING")
    finally:
        os.kill(backing.proc.pid, signal.SIGCONT)
        starting.join(60)
        server.stop()
