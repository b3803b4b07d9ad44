"""The Python examples of the service pages in docs/ run as written against a real server.

Only pages whose every ``python`` block is a whole program are listed (the address is the only thing
changed); the README's blocks are run by ``test_readme.py``. docs/security.md is checked against the
code below: the settings it names, its auth file and permission list, and its Python example (over TLS
with an API key).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from coord_client.cli import build_parser
from coord_client.cli.auth import new_key
from coord_server.auth import parse_auth_file
from coord_server.auth.identity import METHODS

from .certs import make_ca
from .conftest import CoordThread, CoordUnderTest, RedisProcess

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ("cache.md",)
BLOCKS = [
    (page, index, code)
    for page in PAGES
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", (DOCS / page).read_text("utf-8"), re.S))
]


@pytest.mark.parametrize(("page", "index", "code"), BLOCKS, ids=[f"{p}-{i}" for p, i, _ in BLOCKS])
def test_docs_python_example_runs(coord_single: CoordUnderTest, page: str, index: int, code: str) -> None:
    code = code.replace("127.0.0.1:50051", coord_single.target)
    exec(compile(code, f"docs/{page} python block {index}", "exec"), {"__name__": "docs_example"})


# -- docs/security.md: its names, file formats and example are the code's -----------------------------

SECURITY = (DOCS / "security.md").read_text("utf-8")


def test_security_md_names_only_settings_that_exist() -> None:
    """Every COORD_* variable it names is a server setting (docs/configuration.md) or coordctl's."""
    server = set(re.findall(r"`(COORD_[A-Z0-9_]+)`", (DOCS / "configuration.md").read_text("utf-8")))
    coordctl = set(re.findall(r"env\s+(COORD_[A-Z0-9_]+)", build_parser().format_help()))
    named = set(re.findall(r"COORD_[A-Z0-9_]*[A-Z0-9]", SECURITY))
    assert named, "security.md names no setting"
    assert sorted(named - server - coordctl) == []


def test_security_md_defaults_are_the_settings_defaults() -> None:
    """A table row ``| `COORD_X` | default | ...`` gives the default docs/configuration.md gives."""
    configured = dict(
        re.findall(
            r"^\| `(COORD_\w+)` \| `[^`]+` \| ([^|]+) \|",
            (DOCS / "configuration.md").read_text("utf-8"),
            re.M,
        )
    )
    rows = re.findall(r"^\| `(COORD_\w+)` \| (`[^`]*`|\*\(empty\)\*) \|", SECURITY, re.M)
    assert rows, "security.md has no table of defaults"
    for name, default in rows:
        assert configured[name].strip() == default, name


def test_security_md_auth_file_example_loads() -> None:
    [block] = re.findall(r"```yaml\n(.*?)```", SECURITY, re.S)
    loaded = parse_auth_file(block, "docs/security.md")
    assert len(loaded.api_keys) == 2 and set(loaded.certificates) == {"spiffe://coord/billing-worker"}
    billing = loaded.limits.of("billing")
    assert (billing.calls_per_second, billing.burst, billing.max_streams) == (5000, 2000, None)
    assert loaded.limits.of("any-other").max_streams == 100


def test_security_md_lists_every_permission() -> None:
    for service, methods in METHODS.items():
        row = re.search(rf"^\| `{service}` \| ([^|]+) \|$", SECURITY, re.M)
        assert row, f"no permission row for {service}"
        assert row.group(1).strip().split(", ") == sorted(methods), service


def test_security_md_python_example_runs_over_tls_with_an_api_key(
    redis_single: RedisProcess,
    start_coord: Callable[..., CoordThread],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The example, as written, against a server with TLS and an auth file made by coordctl's new-key;
    only the address changes, and it prints what its comments say."""
    ca = make_ca(tmp_path / "pki")
    served = ca.server()
    key, _, entry = new_key("billing-web", "billing", ["cache", "ratelimit.Check"])
    auth = tmp_path / "auth.yaml"
    auth.write_text("api_keys:\n" + entry)
    server = start_coord(
        redis_single.url, tls_cert=str(served.cert_path), tls_key=str(served.key_path), auth_file=str(auth)
    )
    assert server.app is not None
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "billing-web.key").write_text(key + "\n")
    [code] = re.findall(r"```python\n(.*?)```", SECURITY, re.S)
    code = code.replace("coord.internal:50051", f"localhost:{server.app.port}")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/security.md python block", "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out == "b'hello'\nPERMISSION_DENIED lock.Acquire\n"
