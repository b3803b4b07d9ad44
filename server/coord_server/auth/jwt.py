"""JWT bearer tokens (PyJWT): which keys sign them, which algorithms, which claims Coord reads.

Keys come from ``COORD_JWT_KEYS``: a JWKS file (JSON ``{"keys": [...]}``; a token's ``kid`` header
selects the key) or one PEM public key (or a certificate holding one). Each key accepts only the
algorithms of its own family that ``COORD_JWT_ALGORITHMS`` lists, narrowed to the JWK's ``alg`` when
it has one: RSA keys RS*/PS*, EC keys the ES* of their curve, Ed25519/Ed448 keys EdDSA, and
symmetric (``"kty": "oct"``) JWKS keys HS*. ``none`` is refused when the settings are read, and HS*
is refused at load whenever a public key is configured, so a token can never pick an algorithm
outside that list, nor turn a public key into an HMAC secret (CVE-2022-29217).

A token is accepted when its signature verifies, ``exp`` and ``nbf`` are present and hold (with
``COORD_JWT_LEEWAY`` of clock skew), ``iss`` equals ``COORD_JWT_ISSUER`` and ``aud`` contains
``COORD_JWT_AUDIENCE`` when those are set, and the claim ``COORD_JWT_TENANT_CLAIM`` is a valid tenant
name. The claim ``COORD_JWT_ALLOW_CLAIM`` grants permissions: a list of allow entries as in the auth
file (or one string of them separated by spaces, as OAuth scopes are); a token without it may call
nothing (PERMISSION_DENIED), and one with an entry Coord does not know is refused. The identity's
name (for logs) is ``jwt:<sub>``. Any failure is the same UNAUTHENTICATED to the caller.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ..config import ConfigError, Settings
from .identity import Identity, allow_problem, is_name, is_tenant
from .keys import LimitTable

log = logging.getLogger(__name__)

_RSA = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_HMAC = frozenset({"HS256", "HS384", "HS512"})
_EC_CURVES = {"P-256": {"ES256"}, "secp256k1": {"ES256K"}, "P-384": {"ES384"}, "P-521": {"ES512", "ES521"}}
_EC_CURVE_OF = {"secp256r1": "P-256", "secp256k1": "secp256k1", "secp384r1": "P-384", "secp521r1": "P-521"}
_FAMILY = {"RSA": _RSA, "OKP": frozenset({"EdDSA"}), "oct": _HMAC}


@dataclass(frozen=True)
class VerifyKey:
    """One key tokens may be signed with, and the algorithms it verifies."""

    kid: str | None
    key: Any  # a cryptography public key, or bytes for a symmetric JWKS key
    algorithms: tuple[str, ...]


@dataclass(frozen=True)
class KeySet:
    """The keys of ``COORD_JWT_KEYS``, by ``kid``."""

    by_kid: Mapping[str, VerifyKey]
    only: VerifyKey | None  # the key when there is exactly one: tokens need no kid then

    def select(self, kid: object) -> VerifyKey | None:
        if isinstance(kid, str) and kid in self.by_kid:
            return self.by_kid[kid]
        if self.only is not None and self.only.kid is None:
            return self.only
        return None


def load_keys(path: str, algorithms: Sequence[str]) -> KeySet:
    """Read ``path`` (JWKS or PEM) and pair each key with the algorithms it may verify.

    ConfigError when the file cannot be read, holds no usable key, or ``algorithms`` lists HS* while a
    public key is configured.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"COORD_JWT_KEYS: {path}: cannot be read: {exc}") from None
    allowed = frozenset(algorithms)
    keys = _jwks(data, path, allowed) if data.lstrip().startswith(b"{") else [_pem(data, path, allowed)]
    if any(not isinstance(k.key, bytes) for k in keys) and allowed & _HMAC:
        hmac = ", ".join(sorted(allowed & _HMAC))
        raise ConfigError(
            f"COORD_JWT_KEYS: {path} holds a public key, so COORD_JWT_ALGORITHMS must not list {hmac}: "
            "an HS* token would be checked with the public key as its secret"
        )
    usable = [k for k in keys if k.algorithms]
    if not usable:
        listed = ", ".join(algorithms)
        raise ConfigError(f"COORD_JWT_KEYS: no key in {path} fits COORD_JWT_ALGORITHMS ({listed})")
    by_kid: dict[str, VerifyKey] = {}
    for key in usable:
        if key.kid is not None:
            if key.kid in by_kid:
                raise ConfigError(f"COORD_JWT_KEYS: {path}: kid {key.kid!r} is used by two keys")
            by_kid[key.kid] = key
    return KeySet(MappingProxyType(by_kid), usable[0] if len(usable) == 1 else None)


def _jwks(data: bytes, path: str, allowed: frozenset[str]) -> list[VerifyKey]:
    try:
        document = json.loads(data)
        entries = document["keys"]
        if not isinstance(entries, list):
            raise TypeError("'keys' is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"COORD_JWT_KEYS: {path} is not a JWKS document: {exc}") from None
    keys = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue  # encryption keys are not for verifying signatures
        kid = entry.get("kid")
        try:
            jwk = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            raise ConfigError(f"COORD_JWT_KEYS: {path}: key {number} (kid {kid!r}): {exc}") from None
        family = _FAMILY.get(str(jwk.key_type))
        if family is None:  # EC: the curve decides the one algorithm
            family = frozenset(_EC_CURVES.get(str(entry.get("crv")), ()))
        fits = family & allowed
        if "alg" in entry:
            fits &= {entry["alg"]}
        keys.append(VerifyKey(str(kid) if kid is not None else None, jwk.key, tuple(sorted(fits))))
    return keys


def _pem(data: bytes, path: str, allowed: frozenset[str]) -> VerifyKey:
    try:
        if b"BEGIN CERTIFICATE" in data:
            key: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(
            f"COORD_JWT_KEYS: {path} is neither a JWKS file nor a PEM public key: {exc}"
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        family: frozenset[str] = _RSA
    elif isinstance(key, ec.EllipticCurvePublicKey):
        family = frozenset(_EC_CURVES.get(_EC_CURVE_OF.get(key.curve.name, ""), ()))
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        family = frozenset({"EdDSA"})
    else:
        raise ConfigError(f"COORD_JWT_KEYS: {path}: unsupported key type {type(key).__name__}")
    return VerifyKey(None, key, tuple(sorted(family & allowed)))


class JwtVerifier:
    """Checks JWT bearer tokens against the configured keys and claims (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.jwt_keys
        self._names = settings.jwt_algorithm_names
        self._algorithms = frozenset(self._names)
        self.keys = load_keys(self.path, self._names)
        self._issuer = settings.jwt_issuer or None
        self._audience = settings.jwt_audience or None
        self._leeway = settings.jwt_leeway
        self._tenant_claim = settings.jwt_tenant_claim
        self._allow_claim = settings.jwt_allow_claim
        required = ["exp", "nbf"]
        if self._issuer:
            required.append("iss")
        if self._audience:
            required.append("aud")
        # verify_aud off without an audience: PyJWT would otherwise refuse every token that has one.
        self._options: Any = {"require": required, "verify_aud": self._audience is not None}

    def reload(self) -> None:
        """Re-read the key file; ConfigError (and the old keys stay) when it is wrong."""
        self.keys = load_keys(self.path, self._names)

    def verify(self, token: str, limits: LimitTable) -> tuple[Identity, float] | None:
        """The identity ``token`` proves and the wall-clock time until which it holds, or None."""
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if algorithm not in self._algorithms:
                return None
            key = self.keys.select(header.get("kid"))
            if key is None or algorithm not in key.algorithms:
                return None
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(key.algorithms),
                options=self._options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except Exception as exc:  # every failure is the same UNAUTHENTICATED, whatever PyJWT raises
            log.debug("JWT refused: %s", type(exc).__name__)
            return None
        identity = self._identity(claims, limits)
        if identity is None:
            return None
        return identity, float(claims["exp"])

    def _identity(self, claims: Mapping[str, Any], limits: LimitTable) -> Identity | None:
        tenant = claims.get(self._tenant_claim)
        if not is_tenant(tenant):
            log.debug("JWT refused: claim %r is not a valid tenant", self._tenant_claim)
            return None
        assert isinstance(tenant, str)
        raw = claims.get(self._allow_claim, [])
        entries = raw.split() if isinstance(raw, str) else raw
        if not isinstance(entries, list) or any(allow_problem(e) is not None for e in entries):
            log.debug("JWT refused: claim %r is not a list of allow entries", self._allow_claim)
            return None
        subject = claims.get("sub")
        name = f"jwt:{subject}" if is_name(subject) else "jwt"
        return Identity(name, tenant, frozenset(entries), limits.of(tenant))
