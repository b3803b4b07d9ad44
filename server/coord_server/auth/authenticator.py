"""From a call's credentials to an :class:`Identity`: API keys, JWTs, client certificates.

A call with ``authorization`` metadata is identified by it alone: ``Bearer <credential>``, where the
credential is a JWT (three dot-separated parts, when ``COORD_JWT_KEYS`` is set) or else an API key.
A call without it is identified by the SANs of its verified client certificate (mTLS), looked up in
the auth file's ``certificates``. Anything else (no credential, two ``authorization`` entries,
another scheme, an unknown key or SAN, a token that fails any check) identifies nobody.

Verified credentials are remembered (by the exact metadata value) in a bounded table, so a repeated
call costs one dict lookup, not a SHA-256 or a signature check: API keys until the next reload, JWTs
until their ``exp`` and at most :data:`JWT_CACHE_SECONDS`. Failures are never remembered, so the
table only ever holds credentials that were valid. A reload empties it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from cryptography import x509

from ..config import ConfigError, Settings
from .identity import Identity
from .jwt import JwtVerifier
from .keys import EMPTY, AuthFile, LimitTable, load_auth_file

log = logging.getLogger(__name__)

#: Longest ``authorization`` value looked at; longer ones are refused unread (gRPC's own metadata
#: limit, 8 KiB by default, usually refuses them first).
MAX_CREDENTIAL = 8 * 1024
#: Most verified credentials remembered at once; the oldest is forgotten first.
CACHE_SIZE = 10_000
#: A verified JWT is checked again after this long even if its ``exp`` is later.
JWT_CACHE_SECONDS = 300.0
# Certificate PEMs whose SANs were parsed (only on gRPC builds without peer_uri / peer_dns).
_PEM_CACHE_SIZE = 1_000

_NEVER = math.inf


class Authenticator:
    """Who a call is from. Owned by the app; :meth:`reload` swaps in a re-read auth file and JWT keys."""

    def __init__(self, settings: Settings) -> None:
        self._path = settings.auth_file
        self._file = load_auth_file(self._path) if self._path else EMPTY
        self._jwt = JwtVerifier(settings) if settings.jwt_keys else None
        self._verified: dict[str, tuple[Identity, float]] = {}
        self._pem_sans: dict[bytes, list[str]] = {}

    @property
    def limits(self) -> LimitTable:
        return self._file.limits

    @property
    def file(self) -> AuthFile:
        return self._file

    def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> Identity | None:
        """The caller of the call ``context`` serves, or None when it is nobody Coord knows."""
        credential = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                if credential is not None or not isinstance(value, str):
                    return None  # two credentials (which one counts would be a guess), or bytes
                credential = value
        if credential is not None:
            return self.from_authorization(credential)
        if self._file.certificates:
            return self.from_certificate(context.auth_context())
        return None

    def from_authorization(self, value: str) -> Identity | None:
        """The identity an ``authorization`` metadata value proves, or None."""
        hit = self._verified.get(value)
        if hit is not None:
            identity, until = hit
            if until is _NEVER or time.time() < until:
                return identity
            del self._verified[value]
        if len(value) > MAX_CREDENTIAL:
            return None
        scheme, _, credential = value.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return None
        found = self._verify(credential)
        if found is not None:
            if len(self._verified) >= CACHE_SIZE:
                del self._verified[next(iter(self._verified))]
            self._verified[value] = found
            return found[0]
        return None

    def _verify(self, credential: str) -> tuple[Identity, float] | None:
        if self._jwt is not None and credential.count(".") == 2:
            verified = self._jwt.verify(credential, self._file.limits)
            if verified is None:
                return None
            identity, expires = verified
            return identity, min(expires, time.time() + JWT_CACHE_SECONDS)
        digest = hashlib.sha256(credential.encode("utf-8", "surrogatepass")).digest()
        entry = self._file.api_keys.get(digest)
        # The lookup compares digests of the caller's own input, which say nothing about any key;
        # the stored digest is compared once more in constant time all the same.
        if entry is None or not hmac.compare_digest(entry.sha256, digest):
            return None
        return entry.identity, _NEVER

    def from_certificate(self, auth_context: Mapping[str, Iterable[bytes]]) -> Identity | None:
        """The identity of the client certificate gRPC verified (mTLS), by its URI, then DNS, SANs."""
        certificates = self._file.certificates
        for san in self._sans(auth_context):
            identity = certificates.get(san)
            if identity is not None:
                return identity
        return None

    def _sans(self, auth_context: Mapping[str, Iterable[bytes]]) -> list[str]:
        if "peer_uri" in auth_context or "peer_dns" in auth_context:
            raw = [*auth_context.get("peer_uri", ()), *auth_context.get("peer_dns", ())]
            return [san.decode("utf-8", "replace") for san in raw]
        pems = list(auth_context.get("x509_pem_cert", ()))
        if not pems:
            return []
        pem = pems[0]
        sans = self._pem_sans.get(pem)
        if sans is None:
            sans = _parse_sans(pem)
            if len(self._pem_sans) >= _PEM_CACHE_SIZE:
                self._pem_sans.clear()
            self._pem_sans[pem] = sans
        return sans

    def reload(self) -> bool:
        """Re-read the auth file and the JWT keys; on any error log it, keep both and return False."""
        try:
            loaded = load_auth_file(self._path) if self._path else EMPTY
            if self._jwt is not None:
                self._jwt.reload()
        except ConfigError as exc:
            log.error("auth NOT reloaded, the previous keys and identities stay in force: %s", exc)
            return False
        self._file = loaded
        self._verified.clear()
        log.info(
            "auth reloaded: %d API keys, %d certificate identities%s",
            len(loaded.api_keys),
            len(loaded.certificates),
            ", JWT keys from " + self._jwt.path if self._jwt is not None else "",
        )
        return True


def _parse_sans(pem: bytes) -> list[str]:
    """URI then DNS SANs of a PEM certificate (gRPC verified it already; this only reads it)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return []
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return [*uris, *names.get_values_for_type(x509.DNSName)]
