"""``python -m coord_server`` / ``coord-server``: run Coord until SIGTERM or SIGINT.

With ``--workers N`` (``COORD_WORKERS``) above 1, this process becomes a supervisor: it starts the
embedded Redis once (when no Redis URL is given), then N worker processes that each run a whole
Coord server on the same port (SO_REUSEPORT: the kernel spreads connections over them) and share
that Redis through its socket. It forwards SIGTERM, SIGINT and SIGHUP to the workers; when a worker
exits on its own, it stops the others and exits with an error, so that whatever supervises Coord
(systemd, Kubernetes) restarts the whole group.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from . import logs, metrics
from .app import serve
from .config import ConfigError, Settings, load_settings
from .embedded import EmbeddedRedis, _die_with_parent
from .errors import StartupError
from .tls import check_exposure

log = logging.getLogger("coord_server")

# Set in a worker's environment by its supervisor: that process serves instead of supervising.
_WORKER_ENV = "_COORD_SUPERVISOR_PID"


def _loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop]:
    if settings.event_loop == "uvloop":
        try:
            # uvloop's faster event loop; it is a pinned dependency, but stay usable without it.
            import uvloop

            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory
        except ImportError:  # pragma: no cover
            log.warning("uvloop is not installed; using asyncio's own event loop")
    return asyncio.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 after a signal, 2 for a configuration error (found while reading the settings
    or while starting the services), 1 when the server cannot start or a worker failed."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args)
        # Here too, not only where the port is bound, so that a supervisor refuses before it starts
        # its workers and the refusal is one line, not one per worker.
        check_exposure(settings)
    except ConfigError as exc:
        return _configuration_error(exc)
    logs.configure(settings.log_level, settings.log_format)
    supervise = settings.workers > 1 and _WORKER_ENV not in os.environ
    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings)) as runner:
            if supervise:
                return runner.run(_supervise(settings, args))
            runner.run(serve(settings))
    except ConfigError as exc:
        return _configuration_error(exc)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


def _configuration_error(error: ConfigError) -> int:
    print(f"coord-server: configuration error: {error}", file=sys.stderr)
    return 2


async def _supervise(settings: Settings, args: list[str]) -> int:
    """Run ``settings.workers`` workers until a signal (exit 0) or a worker's own exit (exit 1)."""
    embedded: EmbeddedRedis | None = None
    worker_args = list(args)
    if settings.embedded:
        embedded = EmbeddedRedis(settings.data_dir)
        worker_args += ["--redis-url", await embedded.start()]  # a later flag wins over an earlier one
    env = {**os.environ, _WORKER_ENV: str(os.getpid())}
    merged: metrics.WorkersMetrics | None = None
    if settings.metrics_listen:  # the workers serve theirs to this process, which serves them merged
        merged = metrics.WorkersMetrics()
        env[metrics.WORKER_SOCKETS_ENV] = str(merged.directory)
    workers: list[asyncio.subprocess.Process] = []
    stopping = False
    loop = asyncio.get_running_loop()

    def forward(sig: signal.Signals) -> None:
        nonlocal stopping
        if sig != signal.SIGHUP:
            stopping = True
        for worker in workers:
            if worker.returncode is None:
                worker.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, forward, sig)
    try:
        if merged is not None:
            await merged.listen(settings.metrics_listen)
        for _ in range(settings.workers):
            workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "coord_server",
                    *worker_args,
                    env=env,
                    preexec_fn=_die_with_parent,  # only prctl between fork and exec
                )
            )
        log.info("supervising %d workers: pids %s", len(workers), ", ".join(str(w.pid) for w in workers))
        waits = {asyncio.ensure_future(w.wait()): w for w in workers}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        failed = not stopping
        if failed:
            first = waits[next(iter(done))]
            log.error("worker pid %d exited with %s; stopping the others", first.pid, first.returncode)
            forward(signal.SIGTERM)
        await asyncio.gather(*waits)
        return 1 if failed else 0
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        if embedded is not None:
            await embedded.stop()
        if merged is not None:
            await merged.close()


if __name__ == "__main__":
    sys.exit(main())
