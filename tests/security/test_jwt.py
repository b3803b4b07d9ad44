"""JWT bearer tokens: keys from a PEM or a JWKS file, pinned algorithms, required and checked claims.

Every bad token (expired, not yet valid, wrongly signed, ``alg: none``, HS256 signed with the public
key's bytes, wrong audience or issuer, missing claims) gets the same UNAUTHENTICATED, byte for byte,
and never reaches Redis. The algorithm list refuses ``none`` when the settings are read and HS* when a
public key is configured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from coord_server import auth
from coord_server.auth.authenticator import Authenticator
from coord_server.config import ConfigError, Settings
from tests.conftest import CoordThread, RedisProcess, make_settings

from .authkit import bearer, get, redis_commands, refused, set_value

ISSUER = "https://issuer.test"
AUDIENCE = "coord"


def _public_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def signer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def pem_file(signer: ec.EllipticCurvePrivateKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jwt") / "signer.pem"
    path.write_bytes(_public_pem(signer))
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "svc-42",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "nbf": now - 5,
        "exp": now + 600,
        "tenant": "jwt-a",
        "coord_allow": ["cache"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, algorithm: str = "ES256", headers: dict[str, Any] | None = None, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand: HS256 with ``secret`` as the HMAC key, or no signature at all."""
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims()).encode())
    if secret is None:
        return head + "."
    return head + "." + _b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def jwt_settings(keys: Path, **overrides: Any) -> Settings:
    base = {"jwt_keys": str(keys), "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, **overrides}
    return make_settings("redis://127.0.0.1:1", **base)


@pytest.fixture(scope="module")
def authenticator(pem_file: Path) -> Authenticator:
    return Authenticator(jwt_settings(pem_file))


def test_a_valid_token_gives_its_tenant_and_permissions(
    authenticator: Authenticator, signer: ec.EllipticCurvePrivateKey
) -> None:
    identity = authenticator.from_authorization(f"Bearer {sign(signer)}")
    assert identity is not None
    assert (identity.name, identity.tenant, identity.allow) == ("jwt:svc-42", "jwt-a", frozenset({"cache"}))
    spaced = authenticator.from_authorization(f"Bearer {sign(signer, coord_allow='cache.Get lock')}")
    assert spaced is not None and spaced.allow == frozenset({"cache.Get", "lock"})
    # No allow claim: a known caller that may call nothing (PERMISSION_DENIED, not UNAUTHENTICATED).
    bare = authenticator.from_authorization(f"Bearer {sign(signer, coord_allow=None)}")
    assert bare is not None and bare.allow == frozenset()


def bad_tokens(signer: ec.EllipticCurvePrivateKey, public_pem: bytes) -> dict[str, str]:
    now = int(time.time())
    other = ec.generate_private_key(ec.SECP256R1())
    return {
        "expired": sign(signer, exp=now - 3600, nbf=now - 7200),
        "not yet valid": sign(signer, nbf=now + 3600, exp=now + 7200),
        "wrongly signed": sign(other),
        "alg none": forged({"alg": "none", "typ": "JWT"}, None),
        "HS256 with the public key as secret": forged({"alg": "HS256", "typ": "JWT"}, public_pem),
        "wrong audience": sign(signer, aud="someone-else"),
        "wrong issuer": sign(signer, iss="https://evil.test"),
        "no exp": sign(signer, exp=None),
        "no nbf": sign(signer, nbf=None),
        "no iss": sign(signer, iss=None),
        "no aud": sign(signer, aud=None),
        "no tenant": sign(signer, tenant=None),
        "bad tenant": sign(signer, tenant="a:b"),
        "unknown permission": sign(signer, coord_allow=["cache.Nope"]),
        "a permission that is not text": sign(signer, coord_allow=[1]),
        "algorithm not listed": sign(ec.generate_private_key(ec.SECP384R1()), "ES384"),
        "tampered payload": _tampered(sign(signer)),
        "not a JWT": "a.b.c",
    }


def _tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["tenant"] = "jwt-b"
    return ".".join((head, _b64(json.dumps(body).encode()), signature))


def test_every_bad_token_identifies_nobody(
    authenticator: Authenticator, signer: ec.EllipticCurvePrivateKey, pem_file: Path
) -> None:
    for what, token in bad_tokens(signer, pem_file.read_bytes()).items():
        assert authenticator.from_authorization(f"Bearer {token}") is None, what


def test_the_leeway_absorbs_clock_skew(pem_file: Path, signer: ec.EllipticCurvePrivateKey) -> None:
    now = int(time.time())
    lenient = Authenticator(jwt_settings(pem_file, jwt_leeway=3600.0))
    strict = Authenticator(jwt_settings(pem_file, jwt_leeway=0.0))
    just_expired = f"Bearer {sign(signer, exp=now - 60, nbf=now - 120)}"
    assert lenient.from_authorization(just_expired) is not None
    assert strict.from_authorization(just_expired) is None


def test_without_issuer_and_audience_settings_those_claims_are_not_required(
    pem_file: Path, signer: ec.EllipticCurvePrivateKey
) -> None:
    open_ended = Authenticator(jwt_settings(pem_file, jwt_issuer="", jwt_audience=""))
    assert open_ended.from_authorization(f"Bearer {sign(signer, iss=None, aud=None)}") is not None
    assert open_ended.from_authorization(f"Bearer {sign(signer)}") is not None


def test_a_jwks_file_selects_the_key_by_kid(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    jwks = {
        "keys": [
            {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "ec-1"},
            {**OKPAlgorithm.to_jwk(ed_key.public_key(), as_dict=True), "kid": "ed-1", "alg": "EdDSA"},
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    authenticator = Authenticator(jwt_settings(path))
    assert authenticator.from_authorization(f"Bearer {sign(ec_key, headers={'kid': 'ec-1'})}") is not None
    assert authenticator.from_authorization(f"Bearer {sign(ed_key, 'EdDSA', {'kid': 'ed-1'})}") is not None
    for token in (
        sign(ed_key, "EdDSA", {"kid": "ec-1"}),  # the kid of a key of another family
        sign(ec_key, headers={"kid": "ed-1"}),
        sign(ec_key, headers={"kid": "unknown"}),
        sign(ec_key),  # two keys: a token must say which
    ):
        assert authenticator.from_authorization(f"Bearer {token}") is None


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithms", ["none", "RS256,none", "RS256, NONE", "XS256", ""])
def test_algorithm_lists_are_checked_with_the_settings(algorithms: str, pem_file: Path) -> None:
    with pytest.raises(ConfigError, match="COORD_JWT_ALGORITHMS"):
        Settings(jwt_keys=str(pem_file), jwt_algorithms=algorithms).validate()


def test_hs_algorithms_are_refused_with_a_public_key(pem_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must not list HS256"):
        auth.build(jwt_settings(pem_file, jwt_algorithms="ES256,HS256"))
    with pytest.raises(ConfigError, match=r"no key .* fits"):
        auth.build(jwt_settings(pem_file, jwt_algorithms="RS256"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match="neither a JWKS file nor a PEM public key"):
        auth.build(jwt_settings(garbage))


def test_other_identity_settings_are_checked(pem_file: Path) -> None:
    with pytest.raises(ConfigError, match="COORD_REFLECTION"):
        Settings(reflection="sometimes").validate()
    with pytest.raises(ConfigError, match="COORD_JWT_TENANT_CLAIM"):
        Settings(jwt_keys=str(pem_file), jwt_tenant_claim=" ").validate()
    with pytest.raises(ConfigError, match="tenant"):
        Settings(tenant="a\n").validate()


# -- through a server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(redis_single: RedisProcess, pem_file: Path) -> Iterator[CoordThread]:
    settings = make_settings(
        redis_single.url, jwt_keys=str(pem_file), jwt_issuer=ISSUER, jwt_audience=AUDIENCE
    )
    server = CoordThread(settings).start()
    yield server
    server.stop()


def test_through_the_server_bad_tokens_are_one_refusal_that_never_reaches_redis(
    server: CoordThread, redis_single: RedisProcess, signer: ec.EllipticCurvePrivateKey, pem_file: Path
) -> None:
    with grpc.insecure_channel(server.target) as channel, redis_single.client() as r:
        set_value(channel, "j", b"v", bearer(sign(signer)))
        assert get(channel, "j", bearer(sign(signer))).entry.value == b"v"
        before = redis_commands(r)
        answers = {
            what: refused(lambda token=token: get(channel, "j", bearer(token)))  # type: ignore[misc]
            for what, token in bad_tokens(signer, pem_file.read_bytes()).items()
        }
        assert redis_commands(r) == before
    first = next(iter(answers.values()))
    assert first.code == grpc.StatusCode.UNAUTHENTICATED
    assert (first.reason, first.message, first.metadata) == (
        "UNAUTHENTICATED",
        auth.UNAUTHENTICATED_MESSAGE,
        {},
    )
    for what, answer in answers.items():
        assert answer.details == first.details, what  # nothing says which check failed


def test_a_token_without_permissions_is_denied_not_unauthenticated(
    server: CoordThread, signer: ec.EllipticCurvePrivateKey
) -> None:
    with grpc.insecure_channel(server.target) as channel:
        denied = refused(lambda: get(channel, "j", bearer(sign(signer, coord_allow=None))))
    assert (denied.code, denied.reason, denied.metadata) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
        {"permission": "cache.Get"},
    )
