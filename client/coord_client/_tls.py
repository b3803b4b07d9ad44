"""How a client proves who it talks to and who it is: TLS settings and the bearer token.

The token (an API key or a JWT) travels as ``authorization: Bearer <token>`` metadata on every call,
streams included. It is added to each call's metadata by the transport, not by gRPC call
credentials: a Python ``AuthMetadataPlugin`` runs on a new thread for every call, which cost more
than half of a client's throughput at 64 concurrent calls, where plain metadata costs nothing. What
call credentials would add, refusing to send the token in clear, :func:`check_token_transport` does
once, when the client is made: over plaintext, a token may only go to this host (loopback or a unix
socket).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

# A path (str or os.PathLike) to a PEM file, or the PEM bytes themselves.
PemSource = str | os.PathLike[str] | bytes
TokenSource = str | Callable[[], str]

_SCHEMES = ("ipv4:", "ipv6:")


def _hosts(address: str) -> list[str]:
    """The hosts of a gRPC target or listen address (``host:port``, ``[v6]:port``, ``dns:///h:p``,
    ``ipv4:a:p,b:p``); ``[""]`` when no host is given (a server then listens on every interface)."""
    rest = address
    if rest.startswith("dns:"):
        rest = rest.removeprefix("dns:")
        if rest.startswith("//"):  # dns://[authority]/host:port
            rest = rest[2:].partition("/")[2]
    parts = [rest]
    for scheme in _SCHEMES:
        if rest.startswith(scheme):
            parts = rest.removeprefix(scheme).split(",")
    hosts = []
    for part in parts:
        if part.startswith("["):
            hosts.append(part[1:].partition("]")[0])
        else:
            hosts.append(part.rpartition(":")[0] if ":" in part else part)
    return hosts


def is_local_address(address: str) -> bool:
    """True when ``address`` (a target or a listen address) only reaches this host: a ``unix:``
    socket, ``localhost``, or a loopback IP (127.0.0.0/8, ::1)."""
    if address.startswith("unix:"):
        return True
    for host in _hosts(address):
        if host.lower() == "localhost":
            continue
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:  # a name, or no host at all (every interface)
            return False
    return True


def _pem(source: PemSource | None, what: str) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ValueError(f"tls {what}: cannot read {os.fspath(source)}: {exc.strerror or exc}") from None


def _shown(source: PemSource | None) -> str:
    if source is None:
        return "None"
    if isinstance(source, bytes):
        return "<PEM>"
    return repr(os.fspath(source))


@dataclass(frozen=True, repr=False)
class TLSConfig:
    """TLS for a client's channel.

    ``ca``: the CA bundle that signed the server's certificate (None: the system's roots).
    ``cert`` and ``key``: a client certificate and its key, for servers that require one (mTLS);
    both or neither. Each is a path to a PEM file, or the PEM bytes. ``server_name``: the name to
    check the server's certificate against when it is not the target's host (an IP address, say).
    Files are read when the client is made; the repr never shows PEM content.
    """

    ca: PemSource | None = None
    cert: PemSource | None = None
    key: PemSource | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls: a client certificate needs its key, and a key its certificate")

    def __repr__(self) -> str:
        return (
            f"TLSConfig(ca={_shown(self.ca)}, cert={_shown(self.cert)}, key={_shown(self.key)}, "
            f"server_name={self.server_name!r})"
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The gRPC channel credentials; ValueError names a file that cannot be read."""
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca, "ca"),
            private_key=_pem(self.key, "key"),
            certificate_chain=_pem(self.cert, "cert"),
        )

    def options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


class BearerToken:
    """The ``authorization`` metadata of every call. A callable source is asked on every call (and
    every stream opened), so a rotated token is used from the next call on. Never shows the token."""

    __slots__ = ("_fixed", "_source")

    def __init__(self, source: TokenSource) -> None:
        if not (isinstance(source, str) or callable(source)):
            raise TypeError("token must be a str or a callable returning one")
        self._source = source
        self._fixed = _header(source) if isinstance(source, str) else None

    @property
    def fixed(self) -> tuple[str, str] | None:
        """The header when the token never changes (a str), else None."""
        return self._fixed

    def header(self) -> tuple[str, str]:
        if self._fixed is not None:
            return self._fixed
        assert not isinstance(self._source, str)
        return _header(self._source())

    def __repr__(self) -> str:
        return "BearerToken(<hidden>)"


class _Hidden(str):
    """A header value that gRPC sends as it is, but whose repr (a tuple's, a debugger's, a
    traceback's locals) does not show it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'Bearer <hidden>'"


def _header(token: object) -> tuple[str, str]:
    # Checked here so that a bad token fails with a clear message, not a gRPC metadata error, and
    # the message never repeats the token.
    if not isinstance(token, str) or not token or not all("!" <= c <= "~" for c in token):
        raise ValueError("token: must be a non-empty str of printable ASCII without spaces")
    return ("authorization", _Hidden("Bearer " + token))


def check_token_transport(target: str, secure: bool) -> None:
    """Refuse a client that would send its token in clear beyond this host."""
    if not secure and not is_local_address(target):
        raise ValueError(
            f"token: refusing to send it in clear to {target}, which is not a loopback address or a "
            "unix socket: use TLS"
        )


__all__ = [
    "BearerToken",
    "PemSource",
    "TLSConfig",
    "TokenSource",
    "check_token_transport",
    "is_local_address",
]
