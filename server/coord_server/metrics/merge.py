"""One /metrics for ``--workers N``: the supervisor scrapes each worker and merges their figures.

Each worker serves its own figures on a unix socket in a directory the supervisor made (0700, removed
when it stops); at every scrape of COORD_METRICS_LISTEN the supervisor reads them all and sums each
series over the workers: counters, histogram buckets, sums and counts. A gauge is merged as its
declaration says (families.py): summed, or the largest or smallest value (every worker reads the same
Redis INFO: one figure, not N times it; coord_redis_up is 0 when any worker cannot reach Redis).

Chosen over prometheus-client's multiprocess mode, whose every update writes a memory-mapped file:
here an update stays an addition to a number in the worker (core.py), and the merging is paid per
scrape instead of per call. A worker that cannot be read at a scrape (starting, or gone) is left out
of that scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from .core import Merge
from .families import Metrics
from .http import Endpoint

log = logging.getLogger(__name__)

_WORKER_TIMEOUT = 5.0  # a worker's answer to one scrape; past it, that scrape goes without it


def merge_modes() -> dict[str, Merge]:
    """Each gauge's merge (by its name); every other family is summed."""
    return {f.name: f.merge for f in Metrics().registry.families() if f.kind == "gauge"}


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def merge(texts: Iterable[str], modes: dict[str, Merge]) -> bytes:
    """The Prometheus text of ``texts`` (one per worker) merged into one."""
    families: dict[str, Metric] = {}
    merged: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                merged[family.name] = {}
            mode = modes.get(family.name, "sum") if family.type == "gauge" else "sum"
            series = merged[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sample.labels.items()))
                if key not in series:
                    series[key] = sample.value
                elif mode == "sum":
                    series[key] += sample.value
                elif mode == "max":
                    series[key] = max(series[key], sample.value)
                else:
                    series[key] = min(series[key], sample.value)
    for name, family in families.items():
        for (sample_name, labels), value in merged[name].items():
            family.add_sample(sample_name, dict(labels), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(families.values())))
    return generate_latest(registry)


async def read_worker(path: Path) -> str:
    """GET /metrics from one worker's socket."""
    async with asyncio.timeout(_WORKER_TIMEOUT):
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n")
            await writer.drain()
            reply = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        status = head.split(b"\r\n", 1)[0]
        raise ConnectionError(f"worker metrics: {status!r}")
    return body.decode("utf-8")


class WorkersMetrics:
    """The supervisor's side: the workers' socket directory and the merged endpoint."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="coord-metrics-"))  # 0700
        self._modes = merge_modes()
        self._endpoint = Endpoint(self._render)
        self.port: int | None = None

    async def listen(self, listen: str) -> None:
        self.port = await self._endpoint.listen_tcp(listen)
        log.info("serving the workers' merged Prometheus metrics on %s", listen)

    async def _render(self) -> bytes:
        sockets = sorted(self.directory.glob("*.sock"))
        texts = await asyncio.gather(*(read_worker(path) for path in sockets), return_exceptions=True)
        readable = []
        for path, text in zip(sockets, texts, strict=True):
            if isinstance(text, BaseException):
                log.debug("worker metrics at %s not read: %s", path, text)
            else:
                readable.append(text)
        return merge(readable, self._modes)

    async def close(self) -> None:
        await self._endpoint.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def worker_socket(directory: str) -> str:
    return os.path.join(directory, f"{os.getpid()}.sock")
