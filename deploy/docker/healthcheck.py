"""The container's HEALTHCHECK: exit 0 while Coord's gRPC health check says SERVING, 1 otherwise.

It asks ``grpc.health.v1.Health/Check`` for the whole server (service ``""``), which is SERVING while
Coord's Redis answers, on this host at the port of ``COORD_LISTEN`` (an address on all interfaces is
asked through 127.0.0.1; a ``unix:`` socket as it is). Health needs no credential. When Coord serves
TLS (``COORD_TLS_CERT`` set), the check uses TLS too:

- ``COORD_HEALTHCHECK_CA``: the CA bundle to trust (default: ``COORD_TLS_CERT`` itself, which works
  for a self-signed certificate);
- ``COORD_HEALTHCHECK_SERVER_NAME``: the name to expect in the certificate, when it does not name
  the address asked;
- ``COORD_HEALTHCHECK_CERT`` and ``COORD_HEALTHCHECK_KEY``: a client certificate, under mTLS
  (``COORD_TLS_CLIENT_CA``).

Only the installed ``grpcio`` and ``grpcio-health-checking`` are used (Coord's dependencies).
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEADLINE = 4.0  # seconds; below the image's HEALTHCHECK --timeout
ANY_HOST = {"", "0.0.0.0", "::", "[::]", "*"}


def target(listen: str) -> str:
    if listen.startswith("unix:"):
        return listen
    host, _, port = listen.rpartition(":")
    return f"127.0.0.1:{port}" if host in ANY_HOST else listen


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as file:
        return file.read()


def channel(address: str, environ: dict[str, str]) -> grpc.Channel:
    if not environ.get("COORD_TLS_CERT"):
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(environ.get("COORD_HEALTHCHECK_CA") or environ["COORD_TLS_CERT"]),
        private_key=_read(environ.get("COORD_HEALTHCHECK_KEY", "")),
        certificate_chain=_read(environ.get("COORD_HEALTHCHECK_CERT", "")),
    )
    name = environ.get("COORD_HEALTHCHECK_SERVER_NAME")
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(address, credentials, options=options)


def main() -> int:
    environ = dict(os.environ)
    address = target(environ.get("COORD_LISTEN") or "127.0.0.1:50051")
    try:
        with channel(address, environ) as ch:
            request = health_pb2.HealthCheckRequest(service="")
            reply = health_pb2_grpc.HealthStub(ch).Check(request, timeout=DEADLINE)
    except (grpc.RpcError, OSError) as error:
        print(f"coord health check of {address} failed: {error}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
