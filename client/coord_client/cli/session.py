"""``coordctl session ...``: create, check, list and revoke sessions from the shell.

coordctl session create user:42 --idle 30m --absolute 12h --attr role=admin   # prints the token once
coordctl session validate -             # reads the token from stdin (keeps it out of `ps`)
coordctl session list user:42
coordctl session revoke --id 0a3Xyz...  # or: coordctl session revoke -  (token on stdin)
coordctl session revoke-all user:42 --except 0a3Xyz...
"""

from __future__ import annotations

import argparse
from typing import Any

from ..client import Client
from ..session import LIMIT_POLICIES, Session
from ._common import (
    Exit,
    Output,
    duration_or_default,
    positive_int,
    time_text,
    token_arg,
    value_json,
    value_text,
)


def register(subparsers: Any) -> None:
    """Add the ``session`` group and its commands."""
    group = subparsers.add_parser(
        "session", help="create, validate, list and revoke sessions", description=__doc__
    )
    commands = group.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    create = commands.add_parser("create", help="start a session and print its token (shown only once)")
    create.add_argument("subject", nargs="?", default="", help="the user id (omit for an anonymous session)")
    create.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE", help="an attribute")
    # Zero is the server's default, as an unset timeout is (session.proto).
    create.add_argument(
        "--idle", type=duration_or_default, help="idle timeout: 30m, 1h30m (0 or omitted: the server's)"
    )
    create.add_argument(
        "--absolute", type=duration_or_default, help="absolute timeout: 12h (0 or omitted: the server's)"
    )
    create.add_argument(
        "--max-sessions", type=positive_int, default=0, help="most live sessions of the subject"
    )
    create.add_argument("--on-limit", choices=sorted(LIMIT_POLICIES), default="reject")
    create.add_argument("--ip", default="")
    create.add_argument("--user-agent", default="")
    create.add_argument("--label", default="", help="a device name")
    create.set_defaults(handler=_create)

    validate = commands.add_parser("validate", help="check a token (exit 1 when invalid)")
    validate.add_argument("token", help="the token, or - to read it from stdin")
    validate.add_argument("--touch", action="store_true", help="slide the idle expiry")
    validate.add_argument(
        "--attr", action="append", default=[], metavar="NAME", help="attribute to show (* = all)"
    )
    validate.set_defaults(handler=_validate)

    listing = commands.add_parser("list", help="list a subject's live sessions, oldest first")
    listing.add_argument("subject")
    listing.set_defaults(handler=_list)

    revoke = commands.add_parser("revoke", help="end one session (exit 1 if none was live)")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("token", nargs="?", help="the token, or - to read it from stdin")
    target.add_argument("--id", dest="session_id", help="the session id instead of a token")
    revoke.set_defaults(handler=_revoke)

    revoke_all = commands.add_parser("revoke-all", help="end all of a subject's sessions")
    revoke_all.add_argument("subject")
    revoke_all.add_argument(
        "--except", dest="keep", default="", metavar="SESSION_ID", help="a session to keep"
    )
    revoke_all.set_defaults(handler=_revoke_all)


def _attributes(pairs: list[str]) -> dict[str, bytes]:
    attributes = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--attr {pair!r}: expected NAME=VALUE")
        attributes[name] = value.encode()
    return attributes


def _json(session: Session) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "subject": session.subject,
        "version": session.version,
        "create_time": time_text(session.create_time),
        "last_active_time": time_text(session.last_active_time),
        "idle_expire_time": time_text(session.idle_expire_time),
        "absolute_expire_time": time_text(session.absolute_expire_time),
        "ip": session.ip,
        "user_agent": session.user_agent,
        "label": session.label,
        "attributes": {k: value_json(v) for k, v in session.attributes.items()},
    }


def _line(session: Session) -> str:
    device = " ".join(x for x in (session.label, session.ip, session.user_agent) if x)
    return (
        f"{session.session_id}  created {time_text(session.create_time)}  "
        f"idle until {time_text(session.idle_expire_time)}  ends {time_text(session.absolute_expire_time)}"
        + (f"  {device}" if device else "")
    )


def _create(client: Client, args: argparse.Namespace, out: Output) -> int:
    new = client.session.create(
        args.subject,
        _attributes(args.attr),
        idle=args.idle,
        absolute=args.absolute,
        max_sessions=args.max_sessions,
        on_limit=args.on_limit,
        ip=args.ip,
        user_agent=args.user_agent,
        label=args.label,
    )
    data = {"token": new.token, "session": _json(new.session), "evicted_session_ids": new.evicted_session_ids}
    out.result(data, new.token)
    out.note(f"session {new.session.session_id}; the token above is not shown again")
    for evicted in new.evicted_session_ids:
        out.note(f"evicted {evicted}")
    return Exit.OK


def _validate(client: Client, args: argparse.Namespace, out: Output) -> int:
    names: list[str] | str = "*" if "*" in args.attr else args.attr
    result = client.session.validate(token_arg(args.token), touch=args.touch, attributes=names)
    if result.session is None:
        out.result({"valid": False, "reason": result.reason}, None)
        out.note(f"invalid: {result.reason}")
        return Exit.NOT_MET
    session = result.session
    text = "\n".join(
        [f"valid: {session.subject or '(anonymous)'} version {session.version}", _line(session)]
        + [f"{k}={value_text(v)}" for k, v in sorted(session.attributes.items())]
    )
    out.result({"valid": True, "session": _json(session)}, text)
    return Exit.OK


def _list(client: Client, args: argparse.Namespace, out: Output) -> int:
    sessions = list(client.session.iter_sessions(args.subject))
    out.result({"sessions": [_json(s) for s in sessions]}, "\n".join(_line(s) for s in sessions) or None)
    if not sessions:
        out.note(f"{args.subject}: no live sessions")
    return Exit.OK


def _revoke(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.session_id:
        revoked = client.session.revoke(session_id=args.session_id)
    else:
        revoked = client.session.revoke(token_arg(args.token))
    out.result({"revoked": revoked}, "revoked" if revoked else None)
    if not revoked:
        out.note("no live session to revoke")
    return Exit.OK if revoked else Exit.NOT_MET


def _revoke_all(client: Client, args: argparse.Namespace, out: Output) -> int:
    count = client.session.revoke_all(args.subject, except_session_id=args.keep)
    out.result({"revoked_count": count}, f"revoked {count} sessions")
    return Exit.OK
