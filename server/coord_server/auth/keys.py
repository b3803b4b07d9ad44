"""The auth file (``COORD_AUTH_FILE``): API keys, certificate identities and per-tenant limits.

Format (YAML; every section is optional, and no other key is accepted anywhere)::

    api_keys:
      - name: billing-web      # required, unique in the file: shown in logs, never the key.
                               #   1-128 of A-Z a-z 0-9 _ . : @ / -
        sha256: "9f86d0…"      # required, unique: the SHA-256 of the key, 64 hex digits (any case).
                               #   The key is the whole text after "Bearer " in the authorization
                               #   metadata; `coordctl auth new-key` makes one and prints this entry.
        tenant: billing        # required: 1-64 of A-Z a-z 0-9 _ . - (the rule of COORD_TENANT)
        allow: ["*"]           # required, a non-empty list; each entry is "*" (everything but admin),
                               #   a service ("cache", "lock", "ratelimit", "session", "events",
                               #   "admin": all its methods) or one method ("ratelimit.Check",
                               #   "admin.GetStats"). admin sees every tenant's key counts: name it.

    certificates:              # mTLS identities (COORD_TLS_CLIENT_CA must be set for clients to send
                               #   a certificate at all)
      - san: "spiffe://coord/billing-worker"   # required, unique: a URI or DNS subject alternative
                               #   name of the client certificate, compared exactly (case included).
                               #   When a certificate has several SANs listed here, the first URI SAN
                               #   that matches wins, then the first DNS SAN.
        name: billing-worker   # optional (default: the san), unique in the file, as for api_keys
        tenant: billing        # required, as for api_keys
        allow: ["events", "lock.Acquire"]      # required, as for api_keys

    limits:                    # per tenant, on each server (see limits.py): N servers admit N times
      default:                 #   as much. `default` applies to every tenant, also one that appears
        calls_per_second: 1000 #   only in a JWT claim; a field a tenant's entry leaves out comes from
        burst: 2000            #   `default`; a field absent from both (or null) means no limit.
        max_streams: 100
      tenants:
        billing:               # a tenant name, as above
          calls_per_second: 5000
          max_streams: null    # null: no limit for this tenant, whatever `default` says

``calls_per_second`` is a number above 0 (0.5 is one call every 2 s); ``burst`` a whole number from 1,
the calls admitted at once (default: one second's worth, at least 1; it needs ``calls_per_second``);
``max_streams`` a whole number from 1, the streaming calls open at once. A tenant over its rate gets
RESOURCE_EXHAUSTED with reason TENANT_RATE_LIMITED and a RetryInfo; over its streams,
TENANT_STREAM_LIMIT.

A caller with an ``authorization: Bearer`` header is identified by it alone (an API key, or a JWT
when ``COORD_JWT_KEYS`` is set), whatever certificate it presents; a caller without one is
identified by its client certificate. An entry never lists the key itself: only its digest is stored,
and a presented key is found by its digest (then compared in constant time).

The file is read at start (an error stops the server, exit status 2) and again on SIGHUP: a file with
any error is refused as a whole, with the file and line in the log, and the previous one stays in
force. A valid new file replaces the old one at once, for calls that start after the reload.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .._yaml import compose, is_null, pairs
from ..config import ConfigError
from .identity import NO_LIMITS, Identity, Limits, allow_problem, is_name, is_tenant

_SECTIONS = ("api_keys", "certificates", "limits")
_KEY_FIELDS = {"name": True, "sha256": True, "tenant": True, "allow": True}  # field -> required
_CERT_FIELDS = {"san": True, "name": False, "tenant": True, "allow": True}
_LIMIT_FIELDS = ("calls_per_second", "burst", "max_streams")
_MAX_SAN = 255
_HEX = frozenset("0123456789abcdef")


class AuthFileError(ConfigError):
    """The auth file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class LimitTable:
    """The limits of every tenant: ``default``, overridden field by field per tenant."""

    default: Limits = NO_LIMITS
    tenants: Mapping[str, Limits] = field(default_factory=lambda: MappingProxyType({}))

    def of(self, tenant: str) -> Limits:
        return self.tenants.get(tenant, self.default)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One ``api_keys`` entry: the SHA-256 digest of the key, and who presents it."""

    sha256: bytes
    identity: Identity


@dataclass(frozen=True)
class AuthFile:
    """One valid auth file, as loaded: immutable; a reload builds a new one."""

    api_keys: Mapping[bytes, ApiKey]  # by digest
    certificates: Mapping[str, Identity]  # SAN -> identity
    limits: LimitTable

    @property
    def empty(self) -> bool:
        return not self.api_keys and not self.certificates


EMPTY = AuthFile(MappingProxyType({}), MappingProxyType({}), LimitTable())

Fail = Callable[["yaml.Node | None", str], AuthFileError]


def load_auth_file(path: str) -> AuthFile:
    """Read and check the auth file at ``path``; AuthFileError (file:line: why) when it is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthFileError(f"{path}: cannot be read: {exc}") from None
    return parse_auth_file(text, path)


def parse_auth_file(text: str, source: str) -> AuthFile:
    """Parse an auth file's text; ``source`` names it in error messages."""

    root, fail = compose(text, source, AuthFileError)
    if root is None:
        return EMPTY
    sections: dict[str, yaml.Node] = {}
    for key, value in pairs(root, fail, f"the file must be a mapping of {', '.join(_SECTIONS)}"):
        if key.value not in _SECTIONS:
            raise fail(key, f"unknown section {key.value!r} (known: {', '.join(_SECTIONS)})")
        if key.value in sections:
            raise fail(key, f"section {key.value!r} is given twice")
        sections[key.value] = value
    limits = _limits(sections.get("limits"), fail)
    names: set[str] = set()
    api_keys: dict[bytes, ApiKey] = {}
    for entry, values in _entries(sections.get("api_keys"), "api_keys", _KEY_FIELDS, fail):
        digest = _digest(values["sha256"], fail)
        if digest in api_keys:
            raise fail(values["sha256"], "this sha256 is already listed: every key has one entry")
        identity = _identity(entry, values, _str(values["name"], fail), names=names, limits=limits, fail=fail)
        api_keys[digest] = ApiKey(digest, identity)
    certificates: dict[str, Identity] = {}
    for entry, values in _entries(sections.get("certificates"), "certificates", _CERT_FIELDS, fail):
        san = _str(values["san"], fail)
        if not 0 < len(san) <= _MAX_SAN or not san.isprintable() or any(c.isspace() for c in san):
            raise fail(values["san"], f"san {san!r}: 1-{_MAX_SAN} printable characters, no spaces")
        if san in certificates:
            raise fail(values["san"], f"san {san!r} is already listed")
        name = _str(values["name"], fail) if "name" in values else san
        certificates[san] = _identity(entry, values, name, names=names, limits=limits, fail=fail)
    return AuthFile(MappingProxyType(api_keys), MappingProxyType(certificates), limits)


def _identity(
    entry: yaml.Node,
    values: Mapping[str, yaml.Node],
    name: str,
    *,
    names: set[str],
    limits: LimitTable,
    fail: Fail,
) -> Identity:
    where = values.get("name", entry)
    if "name" in values and not is_name(name):
        raise fail(where, f"name {name!r}: 1-128 of A-Z a-z 0-9 _ . : @ / -")
    if name in names:
        raise fail(where, f"name {name!r} is already used by another entry")
    names.add(name)
    tenant = _tenant(values["tenant"], fail)
    allow_node = values["allow"]
    if not isinstance(allow_node, yaml.SequenceNode) or not allow_node.value:
        raise fail(allow_node, f'{name}: allow must be a non-empty list, such as ["*"] or [cache, lock]')
    allow: set[str] = set()
    for item in allow_node.value:
        value = _str(item, fail)
        problem = allow_problem(value)
        if problem is not None:
            raise fail(item, f"{name}: {problem}")
        allow.add(value)
    return Identity(name, tenant, frozenset(allow), limits.of(tenant))


def _entries(
    node: yaml.Node | None, section: str, fields: Mapping[str, bool], fail: Fail
) -> list[tuple[yaml.Node, dict[str, yaml.Node]]]:
    """The entries of a list section, each as its node and its fields' nodes (all present, none extra)."""
    if node is None or is_null(node):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise fail(node, f"{section} must be a list of entries (each line starting with '- ')")
    entries = []
    for item in node.value:
        values: dict[str, yaml.Node] = {}
        for key, value in pairs(item, fail, f"each entry of {section} must be a mapping of fields"):
            if key.value not in fields:
                raise fail(key, f"{section}: unknown field {key.value!r} (known: {', '.join(fields)})")
            if key.value in values:
                raise fail(key, f"{section}: field {key.value!r} is given twice")
            values[key.value] = value
        for name, required in fields.items():
            if required and name not in values:
                raise fail(item, f"{section}: this entry has no {name!r}")
        entries.append((item, values))
    return entries


def _limits(node: yaml.Node | None, fail: Fail) -> LimitTable:
    if node is None or is_null(node):
        return LimitTable()
    default: dict[str, Any] = {}
    tenants: dict[str, dict[str, Any]] = {}
    where: dict[str, yaml.Node] = {}
    for key, value in pairs(node, fail, "limits must be a mapping with 'default' and 'tenants'"):
        if key.value == "default":
            default = _limit_fields(value, "default", fail)
        elif key.value == "tenants":
            for name_node, body in pairs(value, fail, "limits.tenants must map tenant names to limits"):
                tenant = _tenant(name_node, fail)
                if tenant in tenants:
                    raise fail(name_node, f"limits for tenant {tenant!r} are given twice")
                tenants[tenant] = _limit_fields(body, tenant, fail)
                where[tenant] = name_node
        else:
            raise fail(key, f"limits: unknown key {key.value!r} (known: default, tenants)")
    default_limits = _resolve(default, node, "default", fail)
    resolved = {t: _resolve({**default, **own}, where[t], t, fail) for t, own in tenants.items()}
    return LimitTable(default_limits, MappingProxyType(resolved))


def _limit_fields(node: yaml.Node, owner: str, fail: Fail) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in pairs(node, fail, f"limits of {owner} must be a mapping of fields"):
        name = key.value
        if name not in _LIMIT_FIELDS:
            raise fail(key, f"limits of {owner}: unknown field {name!r} (known: {', '.join(_LIMIT_FIELDS)})")
        if name in values:
            raise fail(key, f"limits of {owner}: field {name!r} is given twice")
        number = _scalar(value)
        if number is not None:
            whole = name != "calls_per_second"
            kind = (int,) if whole else (int, float)
            if isinstance(number, bool) or not isinstance(number, kind) or not math.isfinite(number):
                what = "a whole number" if whole else "a number"
                raise fail(value, f"limits of {owner}: {name} must be {what} or null (got {number!r})")
            if (whole and number < 1) or number <= 0:
                least = "at least 1" if whole else "above 0"
                raise fail(value, f"limits of {owner}: {name} must be {least} (got {number!r})")
        values[name] = number
    return values


def _resolve(values: Mapping[str, Any], node: yaml.Node, owner: str, fail: Fail) -> Limits:
    rate, burst = values.get("calls_per_second"), values.get("burst")
    if burst is not None and rate is None:
        raise fail(node, f"limits of {owner}: burst needs calls_per_second")
    return Limits(calls_per_second=rate, burst=burst, max_streams=values.get("max_streams"))


def _tenant(node: yaml.Node, fail: Fail) -> str:
    value = _str(node, fail)
    if not is_tenant(value):
        raise fail(node, f"tenant {value!r}: must be 1-64 of A-Z a-z 0-9 _ . - (no {{ }} : * or spaces)")
    return value


def _digest(node: yaml.Node, fail: Fail) -> bytes:
    text = _str(node, fail).lower()
    if len(text) != 64 or not _HEX.issuperset(text):
        raise fail(node, "sha256 must be 64 hex digits: the SHA-256 digest of the key, not the key")
    return bytes.fromhex(text)


def _scalar(node: yaml.Node) -> Any:
    """A scalar node's value as YAML reads it (a list or mapping becomes a text its check refuses)."""
    if not isinstance(node, yaml.ScalarNode):
        return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
    return yaml.SafeLoader("").construct_object(node)  # type: ignore[no-untyped-call]


def _str(node: yaml.Node, fail: Fail) -> str:
    """A scalar's text as written: names, tenants, SANs and digests are text even where YAML would
    read a number (``tenant: 007`` is the tenant "007")."""
    if not isinstance(node, yaml.ScalarNode):
        raise fail(node, "expected a single value here, not a list or mapping")
    text: str = node.value
    return text
