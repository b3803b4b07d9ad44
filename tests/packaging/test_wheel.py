"""The wheel is a working Coord: built from the sources alone, installed into a new virtualenv with
the dependencies it declares, its ``coord-server`` serves and its ``coordctl`` talks to it.

The build runs on a copy of what a build needs (no generated ``client/coord``, so the stubs must be
made by the build itself; nothing is written into the working tree). The install resolves the wheel's
declared dependencies from the package index, constrained to requirements.txt's pins: a dependency
the code imports but the wheel does not declare fails here, and the versions are the tested ones.
The new virtualenv sees neither this repository nor the test virtualenv (PYTHONPATH is dropped).

Slow (a build with its isolated build environment, then a real install): ``-m 'not packaging'``
deselects it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..certs import make_ca
from ..conftest import RedisProcess, free_port, wait_for

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
# Everything a build reads, with client/coord_client (the Dockerfile's build stage copies the same).
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "protos", "vendor", "server")
# Upper bounds on waiting for pip, not expectations: a cold cache on a loaded machine is slow.
PIP_TIMEOUT = 900


@dataclass
class Installed:
    venv: Path
    wheel: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def _env() -> dict[str, str]:
    """This environment without what would let the new virtualenv see the sources or change Coord."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("COORD_")}


def _run(args: list[str], cwd: Path, timeout: float = PIP_TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}"
    return result


def _copy_sources(dest: Path) -> None:
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    dest.mkdir(parents=True)
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=skip)
        else:
            shutil.copy2(source, dest / name)
    # The client's sources, without the stubs `make proto` generated into client/coord.
    shutil.copytree(ROOT / "client" / "coord_client", dest / "client" / "coord_client", ignore=skip)


def _constraints(dest: Path) -> Path:
    """requirements.txt's pins as a constraints file (pip refuses extras and needs no comments there)."""
    lines = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        pin = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).strip()
        if pin:
            lines.append(pin)
    path = dest / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist, venv = tmp / "src", tmp / "dist", tmp / "venv"
    _copy_sources(src)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(src)], tmp)
    wheels = list(dist.glob("coord-*.whl"))
    assert len(wheels) == 1, wheels
    _run([sys.executable, "-m", "venv", str(venv)], tmp)
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "--constraint", str(_constraints(tmp)), str(wheels[0])], tmp)
    return Installed(venv, wheels[0])


def _source_files() -> set[str]:
    """The package files of the working tree, as paths inside the wheel."""
    found = set()
    for root, package in ((ROOT / "server", "coord_server"), (ROOT / "client", "coord_client")):
        for path in (root / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.add(path.relative_to(root).as_posix())
    return found


def test_wheel_holds_sources_stubs_and_scripts(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = wheel.read(entry_points).decode()
    # Every source file: modules, the Lua scripts, service_config.json, py.typed.
    assert sorted(_source_files() - names) == []
    # The stubs, generated while the wheel was built: messages, services and their .pyi, per .proto.
    for proto in (ROOT / "protos").rglob("*.proto"):
        stem = proto.relative_to(ROOT / "protos").with_suffix("").as_posix()
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            assert stem + suffix in names, stem + suffix
    assert "coord/__init__.py" in names and "coord/cache/v1/__init__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "coord-server = coord_server.__main__:main" in scripts
    assert "coordctl = coord_client.cli:main" in scripts


def test_the_new_virtualenv_imports_the_installed_wheel(installed: Installed) -> None:
    code = (
        "import coord_server, coord_client, coord.cache.v1.cache_pb2 as stubs\n"
        "for module in (coord_server, coord_client, stubs): print(module.__file__)\n"
    )
    result = _run([installed.bin("python"), "-c", code], installed.venv)
    files = result.stdout.split()
    assert len(files) == 3
    for file in files:
        assert Path(file).is_relative_to(installed.venv), file
    _run([installed.bin("python"), "-m", "pip", "check"], installed.venv)


@contextlib.contextmanager
def _coord_server(installed: Installed, redis_url: str, folder: Path, *flags: str) -> Iterator[str]:
    """``coord-server`` of the new virtualenv on a free loopback port, until the block ends: then
    SIGTERM by pid, which must end it with status 0 (a kill only if it did not)."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    log = folder / f"coord-server-{port}.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [installed.bin("coord-server"), "--listen", target, "--redis-url", redis_url,
             "--tenant", f"wheel{port}", "--shutdown-grace", "1", *flags],
            cwd=folder, env=_env(), stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip

    def listening() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        return "Coord listening on" in log.read_text(errors="replace")

    try:
        wait_for(listening, "coord-server from the wheel", timeout=60)
        yield target
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(installed: Installed, redis_single: RedisProcess, tmp_path: Path) -> Iterator[str]:
    """A plaintext ``coord-server`` from the wheel, SERVING (its Redis answers)."""
    with _coord_server(installed, redis_single.url, tmp_path) as target:

        def serving() -> bool:
            with grpc.insecure_channel(target) as channel:
                try:
                    stub = health_pb2_grpc.HealthStub(channel)
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                except grpc.RpcError:
                    return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING

        wait_for(serving, "coord-server from the wheel to be SERVING", timeout=60)
        yield target


def test_coordctl_from_the_wheel_talks_to_coord_server_from_the_wheel(
    installed: Installed, server: str, tmp_path: Path
) -> None:
    coordctl = [installed.bin("coordctl"), "--target", server]
    _run([*coordctl, "cache", "set", "greeting", "hello from the wheel", "--ttl", "60s"], tmp_path, 60)
    got = _run([*coordctl, "cache", "get", "greeting"], tmp_path, 60)
    assert got.stdout.strip() == "hello from the wheel"
    counted = _run([*coordctl, "cache", "incr", "visits", "5"], tmp_path, 60)
    assert counted.stdout.strip() == "5"
    missing = subprocess.run(
        [*coordctl, "cache", "get", "no-such-key"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1, missing.stderr  # coordctl's "not found" exit code


def _health_check(installed: Installed, folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """deploy/docker/healthcheck.py (the Dockerfile's HEALTHCHECK), run by the wheel's virtualenv."""
    return subprocess.run(
        [installed.bin("python"), str(ROOT / "deploy" / "docker" / "healthcheck.py")],
        cwd=folder, env={**_env(), **env}, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_the_image_health_check_runs_in_the_installed_environment(
    installed: Installed, server: str, tmp_path: Path
) -> None:
    """With only the wheel's dependencies: SERVING is exit 0 (an all-interfaces COORD_LISTEN is asked
    through 127.0.0.1); a port nobody listens on is exit 1."""
    ok = _health_check(installed, tmp_path, COORD_LISTEN="0.0.0.0:" + server.rsplit(":", 1)[1])
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"{server}: SERVING"
    down = _health_check(installed, tmp_path, COORD_LISTEN=f"127.0.0.1:{free_port()}")
    assert down.returncode == 1, down.stdout


def test_the_image_health_check_speaks_tls_and_mtls(
    installed: Installed, redis_single: RedisProcess, tmp_path: Path
) -> None:
    """When COORD_TLS_CERT is set the check uses TLS: it trusts COORD_HEALTHCHECK_CA, expects
    COORD_HEALTHCHECK_SERVER_NAME, and under mTLS presents COORD_HEALTHCHECK_CERT/KEY."""
    ca = make_ca(tmp_path / "pki")
    cert = ca.issue("coord-server", dns=("coord.internal",), client=False)  # no 127.0.0.1 in it
    client = ca.issue("health-probe", server=False)
    tls = ["--tls-cert", str(cert.cert_path), "--tls-key", str(cert.key_path)]
    mtls = [*tls, "--tls-client-ca", str(ca.cert_path)]
    settings = {"COORD_TLS_CERT": str(cert.cert_path), "COORD_HEALTHCHECK_CA": str(ca.cert_path)}
    named = {**settings, "COORD_HEALTHCHECK_SERVER_NAME": "coord.internal"}
    with _coord_server(installed, redis_single.url, tmp_path, *tls) as target:
        # Polled: the server reports SERVING once its first Redis probe has answered.
        wait_for(
            lambda: _health_check(installed, tmp_path, COORD_LISTEN=target, **named).returncode == 0,
            "the TLS health check to pass",
            timeout=60,
        )
        wrong_name = _health_check(installed, tmp_path, COORD_LISTEN=target, **settings)
        # No answer at all (a NOT_SERVING answer would be printed): the certificate names no 127.0.0.1.
        assert (wrong_name.returncode, wrong_name.stdout) == (1, ""), wrong_name.stdout
        assert "failed" in wrong_name.stderr
    with _coord_server(installed, redis_single.url, tmp_path, *mtls) as target:
        with_cert = {
            **named,
            "COORD_HEALTHCHECK_CERT": str(client.cert_path),
            "COORD_HEALTHCHECK_KEY": str(client.key_path),
        }
        wait_for(
            lambda: _health_check(installed, tmp_path, COORD_LISTEN=target, **with_cert).returncode == 0,
            "the mTLS health check to pass",
            timeout=60,
        )
        anonymous = _health_check(installed, tmp_path, COORD_LISTEN=target, **named)
        assert (anonymous.returncode, anonymous.stdout) == (1, ""), anonymous.stdout  # no handshake
        assert "failed" in anonymous.stderr
