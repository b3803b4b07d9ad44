"""Packaging step that pyproject.toml cannot declare: the generated gRPC stubs.

The ``coord`` package (``coord.cache.v1.cache_pb2`` and the others) is generated from ``protos/``,
and the ``envoy`` package (Envoy's rate limit service, ``envoy.service.ratelimit.v3.rls_pb2``) from
the vendored ``vendor/protos/``; neither is committed. Building a wheel generates them with
``grpc_tools.protoc`` (a build requirement, pinned to the version ``make proto`` uses, so the wheel's
stubs are the ones the tests ran against) straight into the build directory: a build never writes
into the source tree. Everything else is declared in pyproject.toml.

An editable install (``pip install -e .``, what the Makefile does) generates nothing: there the
stubs come from ``make proto`` into ``client/coord`` and ``client/envoy``, on sys.path through the
Makefile's .pth file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTOS = ROOT / "protos"
VENDOR_PROTOS = ROOT / "vendor" / "protos"
# The top-level packages the stubs make: Coord's own, and Envoy's (vendor/protos/README.md).
PACKAGES = ("coord", "envoy")


def _plugin(name: str) -> str:
    """The protoc plugin script ``name`` of the build environment (mypy-protobuf installs them)."""
    scripts = sysconfig.get_path("scripts")
    for folder in (scripts, os.path.dirname(sys.executable)):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: the build needs mypy-protobuf (a build requirement)")
    return found


def generate_stubs(out: Path) -> list[str]:
    """Generate the ``coord`` package from protos/ and the ``envoy`` package from vendor/protos/ into
    ``out``; returns the files written."""
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    if not sources:
        raise RuntimeError(f"no .proto files under {PROTOS}")
    # Absolute: protoc runs in protos/ and maps them to their path under -I vendor/protos.
    vendored = sorted(str(p) for p in VENDOR_PROTOS.rglob("*.proto"))
    if not vendored:
        raise RuntimeError(f"no .proto files under {VENDOR_PROTOS} (Envoy's rate limit API)")
    out = out.resolve()  # build_lib is relative to the project, protoc runs in protos/
    out.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        shutil.rmtree(out / package, ignore_errors=True)
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    command = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"-I{VENDOR_PROTOS}", f"-I{well_known}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--mypy_out={out}", f"--mypy_grpc_out={out}",
        *sources, *vendored,
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=PROTOS)
    written: list[str] = []
    for name in PACKAGES:
        package = out / name
        # Every folder a package, as `make proto` does; py.typed because the .pyi stubs are shipped too.
        for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
            (folder / "__init__.py").touch()
        (package / "py.typed").touch()
        written += [str(p) for p in package.rglob("*") if p.is_file()]
    return written


class BuildPyWithStubs(build_py):
    """build_py, then the generated ``coord`` and ``envoy`` packages into the same build directory."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            self._stubs = generate_stubs(Path(self.build_lib))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *getattr(self, "_stubs", [])]


setup(cmdclass={"build_py": BuildPyWithStubs})
