"""How Coord authenticates to Redis and encrypts the connection, beyond what the URL says.

- The password may come from a file (``COORD_REDIS_PASSWORD_FILE``), so it is in neither the
  environment nor the process list; the ACL user stays in the URL (``redis://coord@host:6379``).
  The file is read once, when the backend is built; its trailing newline is not part of the password.
- ``rediss://`` (and ``rediss+sentinel://``, for the sentinels and the master alike) verifies the
  server against ``COORD_REDIS_TLS_CA`` (or the system's CAs) and may present a client certificate
  (``COORD_REDIS_TLS_CERT``/``COORD_REDIS_TLS_KEY``).
- Sentinels that ask for a password of their own get it from ``COORD_REDIS_SENTINEL_PASSWORD_FILE``
  (and their ACL user from ``COORD_REDIS_SENTINEL_USERNAME``); the master's password never goes to
  them, nor theirs to the master.

Files that cannot be used fail the start (ConfigError, naming the file), not the first Redis call.
Nothing here ever puts a password in a message.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..redact import url_has_password
from ..sentinel_url import TLS_SCHEME as SENTINEL_TLS_SCHEME
from ..sentinel_url import is_sentinel_url


@dataclass(frozen=True)
class RedisSecurity:
    """The credential and TLS files for a Redis URL; empty strings mean "not configured"."""

    password_file: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    sentinel_password_file: str = ""
    sentinel_username: str = ""

    def connection_options(self, url: str) -> dict[str, Any]:
        """redis-py connection options for ``url``: the password read from its file, the TLS files.

        Raises ConfigError when a file cannot be used, when the URL has a password as well as the
        file, or when TLS files are given for a URL that is not ``rediss://``.
        """
        options: dict[str, Any] = {}
        if self.password_file:
            if url_has_password(url):
                raise ConfigError(
                    "COORD_REDIS_PASSWORD_FILE: the Redis URL has a password too; keep it only in the file"
                )
            options["password"] = read_password_file(self.password_file)
        if self.tls_ca or self.tls_cert or self.tls_key:
            if not url.startswith(("rediss://", SENTINEL_TLS_SCHEME)):
                raise ConfigError(
                    f"COORD_REDIS_TLS_*: the Redis TLS files need a rediss:// or {SENTINEL_TLS_SCHEME} URL"
                )
            _check_tls_files(self.tls_ca, self.tls_cert, self.tls_key)
            options.update(
                ssl_ca_certs=self.tls_ca or None,
                ssl_certfile=self.tls_cert or None,
                ssl_keyfile=self.tls_key or None,
            )
        return options

    def sentinel_options(self, url: str) -> dict[str, Any]:
        """redis-py options for the connections to the sentinels of a Sentinel ``url``: their own
        credentials, and TLS (with the same files as the master's) for ``rediss+sentinel://``.

        Raises ConfigError when the sentinel credentials are given for a URL without sentinels, or
        their file cannot be used.
        """
        if not is_sentinel_url(url):
            if self.sentinel_password_file or self.sentinel_username:
                raise ConfigError("COORD_REDIS_SENTINEL_*: the sentinel credentials need a Sentinel URL")
            return {}
        options: dict[str, Any] = {}
        if self.sentinel_password_file:
            options["password"] = read_password_file(self.sentinel_password_file)
        if self.sentinel_username:
            options["username"] = self.sentinel_username
        if url.startswith(SENTINEL_TLS_SCHEME):
            if self.tls_ca or self.tls_cert or self.tls_key:
                _check_tls_files(self.tls_ca, self.tls_cert, self.tls_key)
            options.update(
                ssl=True,
                ssl_ca_certs=self.tls_ca or None,
                ssl_certfile=self.tls_cert or None,
                ssl_keyfile=self.tls_key or None,
            )
        return options


def read_password_file(path: str) -> str:
    """The password in ``path``, without its trailing newline; ConfigError naming the file if it cannot
    be read or holds nothing."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"COORD_REDIS_PASSWORD_FILE: cannot read {path}: {exc.strerror}") from None
    try:
        password = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"COORD_REDIS_PASSWORD_FILE: {path} is not UTF-8 text") from None
    if not password:
        raise ConfigError(f"COORD_REDIS_PASSWORD_FILE: {path} is empty")
    return password


def _no_passphrase() -> bytes:
    # An encrypted key would otherwise make OpenSSL prompt on the terminal, stalling a service's start.
    return b""


def _check_tls_files(ca: str, cert: str, key: str) -> None:
    """Load the TLS files once now, as redis-py will on connecting, so a bad one fails the start."""
    try:
        context = ssl.create_default_context(cafile=ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"COORD_REDIS_TLS_CA: cannot use {ca}: {_reason(exc)}") from None
    if not cert:
        return
    try:
        context.load_cert_chain(cert, key or None, password=_no_passphrase)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"COORD_REDIS_TLS_CERT/COORD_REDIS_TLS_KEY: cannot use {cert} with {key or 'its own key'}: "
            f"{_reason(exc)} (the key must be a PEM key without a passphrase that matches the certificate)"
        ) from None


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return str(exc.strerror or exc)
