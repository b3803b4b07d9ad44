"""What the authentication tests share: API keys and auth files, calls with a credential, the details
of a refusal, and a count of the Redis commands a server ran (to prove refused calls never got there)."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import redis
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from coord.cache.v1 import cache_pb2, cache_pb2_grpc

# Commands a server runs whether or not anyone calls it: health probes, and the connection set-up
# of redis-py (and of this module's own INFO).
_HOUSEKEEPING = frozenset({"ping", "info", "client", "hello", "select", "command", "auth"})

Metadata = tuple[tuple[str, str | bytes], ...]


def new_key() -> tuple[str, str]:
    """A fresh API key and the hex SHA-256 the auth file lists for it."""
    key = "coord_" + secrets.token_urlsafe(32)
    return key, hashlib.sha256(key.encode()).hexdigest()


def api_key(name: str, digest: str, tenant: str, allow: Sequence[str] = ("*",)) -> dict[str, Any]:
    return {"name": name, "sha256": digest, "tenant": tenant, "allow": list(allow)}


def write_auth(path: Path, **sections: Any) -> Path:
    """Write an auth file with ``sections`` (api_keys=[...], certificates=[...], limits={...}).

    JSON is YAML, so the file is exactly the structure given."""
    path.write_text(json.dumps(sections, indent=2))
    return path


def bearer(credential: str) -> Metadata:
    return (("authorization", f"Bearer {credential}"),)


@dataclass
class Refusal:
    """What a refused call told its caller."""

    code: grpc.StatusCode
    message: str
    reason: str
    metadata: dict[str, str]
    retry_after: float | None
    details: bytes  # the whole grpc-status-details-bin trailer


def refusal(error: grpc.RpcError) -> Refusal:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {error!r}"
    info, retry = error_details_pb2.ErrorInfo(), None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
    assert info.domain == "coord"
    return Refusal(
        code=error.code(),
        message=status.message,
        reason=info.reason,
        metadata=dict(info.metadata),
        retry_after=retry.retry_delay.ToTimedelta().total_seconds() if retry is not None else None,
        details=status.SerializeToString(),
    )


def refused(call: Callable[[], object]) -> Refusal:
    """Make ``call``, which must fail, and return what the server said."""
    try:
        call()
    except grpc.RpcError as error:
        return refusal(error)
    raise AssertionError("the call was not refused")


def cache_stub(channel: grpc.Channel) -> cache_pb2_grpc.CacheServiceStub:
    return cache_pb2_grpc.CacheServiceStub(channel)


def get(channel: grpc.Channel, key: str, metadata: Metadata | None) -> cache_pb2.GetResponse:
    return cache_stub(channel).Get(cache_pb2.GetRequest(key=key), metadata=metadata, timeout=10)


def set_value(channel: grpc.Channel, key: str, value: bytes, metadata: Metadata | None) -> None:
    cache_stub(channel).Set(cache_pb2.SetRequest(key=key, value=value), metadata=metadata, timeout=10)


def redis_commands(client: redis.Redis) -> int:
    """How many commands (housekeeping aside) this Redis has run since it started."""
    stats: dict[str, Any] = client.info("commandstats")
    return sum(
        int(value["calls"])
        for name, value in stats.items()
        if name.removeprefix("cmdstat_").split("|")[0] not in _HOUSEKEEPING
    )
