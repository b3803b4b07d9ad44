"""Secure serving: what TLS and API-key authentication together cost a cache read.

``cache.tls`` starts two Coord servers for itself, on the run's Redis, with the same flags as the
main one and differing only in security:

- *secure*: ``COORD_TLS_CERT``/``COORD_TLS_KEY`` (a server certificate from a CA made for this run)
  and ``COORD_AUTH_FILE`` (one API key, allowed everything); the load comes through
  ``AsyncClient(target, tls=TLSConfig(ca=...), token=key)``, so every call carries
  ``authorization: Bearer <key>`` over TLS and is authenticated and authorized by the server;
- *insecure*: plaintext on loopback, no authentication; the load comes through a plain
  ``AsyncClient(target)``.

Both read the same 1,000 preloaded 100-byte entries (each server in its own tenant: the key's, and
``default``), rounds interleaved at every concurrency level of the plan. The row's ratio is secure ÷
insecure throughput; docs/benchmarks.md sets its goal (≥ 0.90 at c=64: TLS and authentication
together cost at most 10%).

The certificates come from tests/certs.py, the one place the repository makes X.509 certificates.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import tempfile
from pathlib import Path

from coord_client import AsyncClient, TLSConfig
from tests.certs import make_ca

from ._harness import Benchmark, Env, Row, Side, compare
from ._procs import start_coord
from .cache import BATCH, KEYS, VALUE, _user_keys

OPERATION = "cache.Get (hit, 100 B) over TLS + API key"
INSECURE = "Coord insecure (plaintext, no auth)"
# Long enough that no entry expires during the rounds, whatever --duration asks for.
TTL_S = 3600


def _auth_file(folder: Path) -> tuple[Path, str]:
    """An auth file with one fresh API key (tenant ``bench``, every permission), and the key."""
    key = "coord_" + secrets.token_urlsafe(32)
    entry = {"name": "bench", "sha256": hashlib.sha256(key.encode()).hexdigest(), "tenant": "bench"}
    path = folder / "auth.yaml"
    path.write_text(json.dumps({"api_keys": [entry | {"allow": ["*"]}]}))  # JSON is YAML
    path.chmod(0o600)
    return path, key


def _get_side(name: str, client: AsyncClient, pid: int, keys: list[str]) -> Side:
    get = client.cache.get

    async def op(i: int) -> None:
        entry = await get(keys[i % KEYS])
        if not entry.found:  # a miss would be cheaper: never let one count as a read
            raise RuntimeError(f"{name}: cache.Get missed a preloaded key")

    return Side(name, op, pid)


async def bench_tls(env: Env) -> list[Row]:
    keys = _user_keys(KEYS)
    with tempfile.TemporaryDirectory(prefix="coord-bench-tls-") as tmp:
        folder = Path(tmp)
        ca = make_ca(folder / "pki", "bench")
        served = ca.server()
        auth, token = _auth_file(folder)
        secure_env = {
            "COORD_TLS_CERT": str(served.cert_path),
            "COORD_TLS_KEY": str(served.key_path),
            "COORD_AUTH_FILE": str(auth),
        }
        # Stopped here rather than at the end of the run: their files live in this directory.
        secure, secure_target = start_coord(
            folder, env.redis_url, label="secure", env=secure_env, tls_ca=ca.cert_path
        )
        try:
            insecure, insecure_target = start_coord(folder, env.redis_url, label="insecure")
            try:
                async with (
                    AsyncClient(secure_target, tls=TLSConfig(ca=ca.cert_path), token=token) as tls,
                    AsyncClient(insecure_target) as plain,
                ):
                    for client in (tls, plain):
                        for i in range(0, KEYS, BATCH):
                            await client.cache.set_many(dict.fromkeys(keys[i : i + BATCH], VALUE), ttl=TTL_S)
                    return await compare(
                        env,
                        OPERATION,
                        _get_side("Coord TLS + API key", tls, secure.pid, keys),
                        [_get_side(INSECURE, plain, insecure.pid, keys)],
                    )
            finally:
                insecure.stop()
        finally:
            secure.stop()


BENCHMARKS = (Benchmark("cache.tls", bench_tls),)
