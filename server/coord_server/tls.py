"""TLS on the gRPC port: certificates from PEM files, reloaded without dropping connections, and the
rule that an open port needs TLS and authentication.

gRPC asks :meth:`ServerTLS.fetch` for the certificates on every new connection, before its
handshake (``grpc.dynamic_ssl_server_credentials``); ``None`` keeps the ones it has. So a rotation
reaches new connections only: open HTTP/2 connections keep the certificate they were set up with
until they reconnect, and no call is cut.

``fetch`` runs on one of gRPC's own threads, once per connection: it looks at the files at most
every ``COORD_TLS_RELOAD_INTERVAL`` (by inode, size and modification time, a few ``stat`` calls) and
reads them only when they changed. :meth:`ServerTLS.reload` (SIGHUP) reads them at once. New files
are checked here, with ``cryptography``, before gRPC sees them: a certificate that does not parse or
a key that does not match it keeps the previous certificates, and the log says why (once per change
of the files). The key's content never reaches a message.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from coord_client._tls import is_local_address

from .config import ConfigError, Settings

log = logging.getLogger("coord_server.tls")

# What identifies a version of the files without reading them: (inode, size, mtime in ns) of each.
Signature = tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True)
class PemFile:
    """A PEM file a setting names."""

    setting: str  # the environment variable that names it, for messages
    path: str


@dataclass(frozen=True)
class Certificates:
    """One checked set of PEM files as gRPC takes them."""

    cert_chain: bytes
    key: bytes
    client_ca: bytes | None

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(self.key, self.cert_chain)], self.client_ca)


def _read(file: PemFile) -> bytes:
    try:
        with open(file.path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"{file.setting}: cannot read {file.path}: {exc.strerror or exc}") from None


def _certificates(file: PemFile, pem: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certs = []
    if not certs:
        raise ConfigError(f"{file.setting}: {file.path} holds no PEM certificate")
    return certs


def load_certificates(cert: PemFile, key: PemFile, client_ca: PemFile | None) -> Certificates:
    """The files, read and checked; ConfigError names the file that is wrong (never its content)."""
    chain_pem, key_pem = _read(cert), _read(key)
    leaf = _certificates(cert, chain_pem)[0]
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # TypeError: the key is encrypted. Nothing the parser saw goes into the message.
        raise ConfigError(f"{key.setting}: {key.path} is not an unencrypted PEM private key") from None
    raw = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(*raw) != leaf.public_key().public_bytes(*raw):
        raise ConfigError(f"{key.setting}: {key.path} is not the key of the certificate in {cert.path}")
    ca_pem = None
    if client_ca is not None:
        ca_pem = _read(client_ca)
        _certificates(client_ca, ca_pem)
    return Certificates(chain_pem, key_pem, ca_pem)


def _signature(files: tuple[PemFile, ...]) -> Signature:
    marks: list[tuple[int, int, int] | None] = []
    for file in files:
        try:
            st = os.stat(file.path)
        except OSError:
            marks.append(None)
        else:
            marks.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(marks)


class ServerTLS:
    """The server's certificates: gRPC credentials that follow the files as they change.

    ``checks`` and ``loads`` count how often the files were looked at and how often new
    certificates were taken (for tests and debugging).
    """

    def __init__(
        self,
        cert: PemFile,
        key: PemFile,
        client_ca: PemFile | None,
        interval: float,
    ) -> None:
        self._files = (cert, key) + ((client_ca,) if client_ca else ())
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._interval = interval
        self._lock = threading.Lock()  # fetch runs on gRPC's threads, reload on the event loop
        self._signature = _signature(self._files)
        self.current = load_certificates(cert, key, client_ca)  # ConfigError at start-up
        self._pending: Certificates | None = None  # read, not yet handed to gRPC
        self._next_check = time.monotonic() + interval
        self._refused: Signature | None = None  # the files last found broken (logged once)
        self.checks = 0
        self.loads = 0

    @property
    def mutual(self) -> bool:
        """Clients must present a certificate signed by the client CA."""
        return self._client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        # The fetcher may return None ("keep what you have"), which grpc-stubs does not spell.
        fetcher = cast(Callable[[], grpc.ServerCertificateConfiguration], self.fetch)
        return grpc.dynamic_ssl_server_credentials(
            self.current.configuration(), fetcher, require_client_authentication=self.mutual
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's fetcher, before each handshake: new certificates if the files changed, else None."""
        try:
            with self._lock:
                now = time.monotonic()
                if self._pending is None and self._interval > 0 and now >= self._next_check:
                    self._next_check = now + self._interval
                    self._check(force=False)
                pending, self._pending = self._pending, None
            return pending.configuration() if pending is not None else None
        except Exception:  # an exception here would fail the handshake: keep serving what we have
            log.exception("TLS: checking the certificate files failed; keeping the current certificates")
            return None

    def reload(self) -> None:
        """Read the files now (SIGHUP); the next connection gets them if they are good."""
        with self._lock:
            self._check(force=True)

    def _check(self, *, force: bool) -> None:
        self.checks += 1
        signature = _signature(self._files)
        if not force and signature in (self._signature, self._refused):
            return  # unchanged since the last good or the last refused version
        try:
            fresh = load_certificates(self._cert, self._key, self._client_ca)
        except ConfigError as exc:
            # A file half written by whoever rotates it is refused here too; the next change retries.
            log.error("TLS: keeping the current certificates: %s", exc)
            self._refused = signature
            return
        self._signature, self._refused = signature, None
        if fresh != self.current:
            self.current = self._pending = fresh
            self.loads += 1
            log.info("TLS: certificates reloaded from %s", self._cert.path)


def server_tls(settings: Settings) -> ServerTLS | None:
    """The server's TLS from its settings, or None when it serves plaintext."""
    if not settings.tls_enabled:
        return None
    client_ca = PemFile("COORD_TLS_CLIENT_CA", settings.tls_client_ca) if settings.tls_client_ca else None
    return ServerTLS(
        PemFile("COORD_TLS_CERT", settings.tls_cert),
        PemFile("COORD_TLS_KEY", settings.tls_key),
        client_ca,
        settings.tls_reload_interval,
    )


def check_exposure(settings: Settings) -> bool:
    """Refuse (ConfigError, one line) to serve beyond this host without TLS and authentication.

    Returns True when ``--insecure`` is what lets the server listen where it does, so that the
    caller logs a warning.
    """
    if (settings.tls_enabled and settings.auth_enabled) or is_local_address(settings.listen):
        return False
    if settings.insecure:
        return True
    missing = " and ".join(
        what
        for what, ok in (("TLS", settings.tls_enabled), ("authentication", settings.auth_enabled))
        if not ok
    )
    raise ConfigError(
        f"refusing to listen on {settings.listen} without {missing}: set COORD_TLS_CERT and COORD_TLS_KEY, "
        "and COORD_AUTH_FILE or COORD_JWT_KEYS; or listen on a loopback address or a unix: socket; "
        "or pass --insecure (COORD_INSECURE=1) to serve it unprotected"
    )


__all__ = ["Certificates", "PemFile", "ServerTLS", "check_exposure", "load_certificates", "server_tls"]
