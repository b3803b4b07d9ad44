# The Coord server image: `docker build -t coord:0.1.0 .` (deploy/README.md shows how to run it).
#
# A builder stage makes the wheel (setup.py generates the gRPC stubs from protos/ while it builds);
# the final stage installs only that wheel and its declared dependencies, at the versions
# requirements.txt pins, and runs as an unprivileged user.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE requirements.txt ./
COPY protos ./protos
COPY vendor ./vendor
COPY server ./server
COPY client/coord_client ./client/coord_client
# requirements.txt becomes constraints: the same pins, without extras or comments (pip refuses those).
RUN pip wheel --no-deps --wheel-dir /dist . \
 && sed -e 's/#.*//' -e 's/\[[^]]*\]//' requirements.txt > /dist/constraints.txt

FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A numeric user, so that Kubernetes' runAsNonRoot can check it; its home holds the embedded Redis.
RUN groupadd --system --gid 10001 coord \
 && useradd --system --uid 10001 --gid coord --home-dir /var/lib/coord --shell /usr/sbin/nologin coord \
 && install -d -o coord -g coord -m 0700 /var/lib/coord
COPY --from=build /dist /tmp/dist
RUN pip install --constraint /tmp/dist/constraints.txt /tmp/dist/coord-*.whl && rm -rf /tmp/dist
COPY deploy/docker/healthcheck.py /usr/local/lib/coord/healthcheck.py

USER 10001:10001
WORKDIR /var/lib/coord
# All interfaces, so that the published port reaches the server. Coord refuses to listen beyond
# loopback without TLS and authentication (COORD_TLS_CERT/KEY and COORD_AUTH_FILE or COORD_JWT_KEYS),
# unless COORD_INSECURE=1 says so. With no COORD_REDIS_URL it runs an embedded Redis in COORD_DATA_DIR.
ENV COORD_LISTEN=0.0.0.0:50051 COORD_DATA_DIR=/var/lib/coord
EXPOSE 50051
# gRPC health (grpc.health.v1): SERVING while Coord's Redis answers.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/usr/local/lib/coord/healthcheck.py"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["coord-server"]
