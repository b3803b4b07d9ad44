"""``coordctl auth ...``: make credentials for the server's auth file (no server is contacted).

coordctl auth new-key --name billing-web --tenant billing --allow cache --allow ratelimit.Check

``new-key`` prints a fresh random API key, once (Coord stores only its SHA-256, so it cannot be shown
again), and the entry to paste under ``api_keys:`` in the file named by COORD_AUTH_FILE. The server
reads the file again on SIGHUP. Give the key to the client in a file (``coordctl --token-file``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
from typing import Any

from coord.cache.v1 import cache_pb2
from coord.events.v1 import events_pb2
from coord.lock.v1 import lock_pb2
from coord.ratelimit.v1 import ratelimit_pb2
from coord.session.v1 import session_pb2

from ._common import Exit, Output

#: Every key starts with this, so a leaked one is recognisable (secret scanners, logs).
KEY_PREFIX = "coord_"

# The server's rules (coord_server.auth.identity), checked here so a pasted entry always loads.
_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NAME = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")
_METHODS = {
    short: {method.name for service in file.services_by_name.values() for method in service.methods}
    for short, file in (
        ("cache", cache_pb2.DESCRIPTOR),
        ("lock", lock_pb2.DESCRIPTOR),
        ("ratelimit", ratelimit_pb2.DESCRIPTOR),
        ("session", session_pb2.DESCRIPTOR),
        ("events", events_pb2.DESCRIPTOR),
    )
}


def register(subparsers: Any) -> None:
    """Add the ``auth`` group and its commands."""
    group = subparsers.add_parser("auth", help="make API keys for the auth file", description=__doc__)
    commands = group.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    new = commands.add_parser("new-key", help="print a fresh API key (once) and its auth file entry")
    new.add_argument("--name", required=True, type=_name, help="shown in the server's logs, never the key")
    new.add_argument("--tenant", required=True, type=_tenant, help="the tenant the key's calls work in")
    new.add_argument(
        "--allow",
        required=True,
        action="append",
        type=_allow,
        metavar="ENTRY",
        help='"*", a service (cache, lock, ratelimit, session, events) or a method (ratelimit.Check); '
        "repeat for more",
    )
    # Run without a client: nothing here talks to a server.
    new.set_defaults(offline_handler=_new_key)


def new_key(name: str, tenant: str, allow: list[str]) -> tuple[str, str, str]:
    """A fresh key, its SHA-256 (hex) and its auth file entry (YAML, indented for ``api_keys:``)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    digest = hashlib.sha256(key.encode()).hexdigest()
    # JSON strings are YAML scalars: quoting them all keeps "*" and names like "007" as written.
    entry = (
        f"  - name: {json.dumps(name)}\n"
        f"    sha256: {json.dumps(digest)}\n"
        f"    tenant: {json.dumps(tenant)}\n"
        f"    allow: [{', '.join(json.dumps(a) for a in allow)}]\n"
    )
    return key, digest, entry


def _new_key(args: argparse.Namespace, out: Output) -> int:
    allow = list(dict.fromkeys(args.allow))  # in the order given, once each
    key, digest, entry = new_key(args.name, args.tenant, allow)
    data = {"key": key, "name": args.name, "sha256": digest, "tenant": args.tenant, "allow": allow}
    text = (
        "API key (shown only this once; Coord keeps only its SHA-256):\n"
        f"{key}\n\n"
        "Add this entry under api_keys: in the auth file (COORD_AUTH_FILE), then send the server SIGHUP:\n"
        f"{entry.rstrip()}"
    )
    out.result({**data, "yaml": entry}, text)
    return Exit.OK


def _name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: 1-128 of A-Z a-z 0-9 _ . : @ / -")
    return text


def _tenant(text: str) -> str:
    if not _TENANT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: 1-64 of A-Z a-z 0-9 _ . -")
    return text


def _allow(text: str) -> str:
    if text == "*" or text in _METHODS:
        return text
    service, _, method = text.partition(".")
    if method in _METHODS.get(service, ()):
        return text
    raise argparse.ArgumentTypeError(
        f'{text!r}: not "*", a service ({", ".join(_METHODS)}) or one of its methods (cache.Get)'
    )
