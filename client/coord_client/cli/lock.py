"""``coordctl lock ...``: take, inspect and release locks from the shell, or run a command under one.

coordctl lock acquire jobs --ttl 5m --wait 10s   # prints: TOKEN FENCING_TOKEN (exit 1 if not acquired)
coordctl lock describe jobs
coordctl lock extend jobs TOKEN --ttl 5m
coordctl lock release jobs TOKEN                 # or TOKEN "-" to read it from stdin
coordctl lock run jobs --wait 1m -- ./nightly.sh # held while the command runs, released when it exits

`run` gives the command COORD_LOCK_NAME and COORD_LOCK_FENCING_TOKEN in its environment, exits with
the command's status, and exits 1 without running it when the lock is not acquired within --wait.
If the lock is lost while the command runs, the command gets SIGTERM and coordctl exits 4.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from typing import Any

from ..client import Client
from ..lock import AcquireResult, Grant, Holder, LockInfo, LockLost, LockNotAcquired, Mode
from ._common import Exit, Output, duration, positive_int, time_text, token_arg


def register(subparsers: Any) -> None:
    """Add the ``lock`` group and its commands."""
    group = subparsers.add_parser(
        "lock",
        help="acquire, extend, release and inspect locks; run a command under a lock",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = group.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    acquire = commands.add_parser("acquire", help="take the lock; print TOKEN FENCING_TOKEN (exit 1 if not)")
    acquire.add_argument("name")
    _lock_options(acquire)
    acquire.set_defaults(handler=_acquire)

    release = commands.add_parser("release", help="end a grant (exit 1 unless it was released)")
    release.add_argument("name")
    release.add_argument("token", help="the lock token, or - to read it from stdin")
    release.set_defaults(handler=_release)

    extend = commands.add_parser("extend", help="give a grant a new TTL from now (exit 1 if not held)")
    extend.add_argument("name")
    extend.add_argument("token", help="the lock token, or - to read it from stdin")
    extend.add_argument("--ttl", type=duration, help="the new lease: 30s, 5m (default: the server's)")
    extend.add_argument(
        "--resume", action="store_true", help="revive an expired grant if nobody was granted since"
    )
    extend.set_defaults(handler=_extend)

    describe = commands.add_parser("describe", help="show holders, mode, queue and newest fencing token")
    describe.add_argument("name")
    describe.set_defaults(handler=_describe)

    run = commands.add_parser(
        "run",
        help="run a command while holding the lock (exit with its status; 1 if not acquired)",
        description="Hold NAME through a Hold stream while CMD runs; release it the moment CMD exits.",
    )
    run.add_argument("name")
    _lock_options(run)
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...", help="the command to run")
    run.set_defaults(handler=_run)


def _lock_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ttl", type=duration, help="the lease: 500ms, 30s, 5m (default: the server's)")
    parser.add_argument("--wait", type=duration, help="wait up to this long in the queue (default: try once)")
    parser.add_argument("--mode", choices=[m.value for m in Mode], help="default: shared with --limit")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="most shared holders (a semaphore)")
    parser.add_argument("--owner", default="", metavar="LABEL", help="a label shown by describe")


def _holder_json(holder: Holder) -> dict[str, Any]:
    return {
        "owner": holder.owner,
        "mode": holder.mode.value,
        "fencing_token": holder.fencing_token,
        "expire_time": time_text(holder.expire_time),
        "remaining": holder.remaining,
        "limit": holder.limit,
    }


def _holder_line(holder: Holder) -> str:
    limit = f" limit {holder.limit}" if holder.limit else ""
    return (
        f"{holder.owner or '(no owner)'}  {holder.mode.value}{limit}  fencing token {holder.fencing_token}"
        f"  {holder.remaining:.3f}s left"
    )


def _grant_json(grant: Grant) -> dict[str, Any]:
    return {
        "name": grant.name,
        "lock_token": grant.lock_token,
        "fencing_token": grant.fencing_token,
        "mode": grant.mode.value,
        "expire_time": time_text(grant.expire_time),
        "valid_for": grant.valid_for,
    }


def _not_acquired(out: Output, name: str, holders: list[Holder], position: int, data: dict[str, Any]) -> int:
    out.result(data, None)
    where = f" (number {position} in the queue when the wait ended)" if position else ""
    out.note(f"{name}: not acquired{where}")
    for holder in holders:
        out.note(f"  held by {_holder_line(holder)}")
    return Exit.NOT_MET


def _acquire(client: Client, args: argparse.Namespace, out: Output) -> int:
    result: AcquireResult = client.lock.acquire(
        args.name, args.ttl, wait=args.wait, mode=args.mode, limit=args.limit, owner=args.owner
    )
    if result.grant is None:
        data = {
            "acquired": False,
            "holders": [_holder_json(h) for h in result.holders],
            "queue_position": result.queue_position,
            "queue_length": result.queue_length,
        }
        return _not_acquired(out, args.name, result.holders, result.queue_position, data)
    grant = result.grant
    out.result({"acquired": True, "grant": _grant_json(grant)}, f"{grant.lock_token} {grant.fencing_token}")
    out.note(f"{args.name}: acquired until {time_text(grant.expire_time)}; keep the token to release it")
    return Exit.OK


def _release(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.lock.release(args.name, token_arg(args.token))
    out.result({"name": args.name, "outcome": result.outcome.value, "released": result.released}, None)
    out.note(f"{args.name}: {result.outcome.value.replace('_', ' ')}")
    return Exit.OK if result.released else Exit.NOT_MET


def _extend(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.lock.extend(args.name, token_arg(args.token), args.ttl, resume=args.resume)
    data: dict[str, Any] = {"name": args.name, "outcome": result.outcome.value, "held": result.held}
    if not result.held:
        out.result(data, None)
        out.note(f"{args.name}: not extended: {result.outcome.value.replace('_', ' ')}")
        return Exit.NOT_MET
    data.update(
        expire_time=time_text(result.expire_time),
        valid_for=result.valid_for,
        fencing_token=result.fencing_token,
    )
    out.result(data, f"{args.name} {result.outcome.value} until {time_text(result.expire_time)}")
    return Exit.OK


def _info_json(info: LockInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "mode": info.mode.value if info.mode else None,
        "holders": [_holder_json(h) for h in info.holders],
        "holder_count": info.holder_count,
        "queue_length": info.queue_length,
        "last_fencing_token": info.last_fencing_token,
        "limit": info.limit,
    }


def _describe(client: Client, args: argparse.Namespace, out: Output) -> int:
    info = client.lock.describe(args.name)
    if info.mode is None:
        head = f"{info.name}: free"
    else:
        limit = f", limit {info.limit}" if info.limit else ""
        head = f"{info.name}: {info.mode.value}, {info.holder_count} holder(s){limit}"
    lines = [
        f"{head}, {info.queue_length} waiting, last fencing token {info.last_fencing_token}",
        *(f"  {_holder_line(h)}" for h in info.holders),
    ]
    out.result(_info_json(info), "\n".join(lines))
    return Exit.OK


def _command(args: argparse.Namespace) -> list[str]:
    """The command of ``run``; lock options between NAME and ``--`` are parsed into ``args`` too."""
    rest: list[str] = args.cmd
    if rest[:1] == ["--"]:
        rest = rest[1:]
    elif rest[:1] and rest[0].startswith("-"):
        if "--" not in rest:
            raise ValueError(f"put -- between the options and the command (after {rest[0]!r})")
        late = argparse.ArgumentParser(prog="coordctl lock run", add_help=False)
        _lock_options(late)
        late.parse_args(rest[: rest.index("--")], namespace=args)
        rest = rest[rest.index("--") + 1 :]
    if not rest:
        raise ValueError("run needs a command: coordctl lock run NAME [options] -- CMD [ARGS...]")
    return rest


def _run(client: Client, args: argparse.Namespace, out: Output) -> int:
    command = _command(args)
    child: list[subprocess.Popen[bytes]] = []
    lost: list[LockLost] = []

    def on_lost(error: LockLost) -> None:
        lost.append(error)
        if child and child[0].poll() is None:
            child[0].terminate()

    hold = client.lock.hold(
        args.name,
        args.ttl,
        wait=args.wait,
        mode=args.mode,
        limit=args.limit,
        owner=args.owner,
        raise_on_lost=False,
        on_lost=on_lost,
    )
    try:
        with hold as lease:
            env = {
                **os.environ,
                "COORD_LOCK_NAME": args.name,
                "COORD_LOCK_FENCING_TOKEN": str(lease.fencing_token),
            }
            try:
                child.append(subprocess.Popen(command, env=env))
            except OSError as error:
                out.usage_error(f"cannot run {command[0]!r}: {error.strerror or error}")
                return 127
            if lease.lost.is_set() and child[0].poll() is None:  # lost before the child existed
                child[0].terminate()
            status = child[0].wait()
    except LockNotAcquired as refused:
        data = {"acquired": False, "holders": [_holder_json(h) for h in refused.holders]}
        return _not_acquired(out, args.name, refused.holders, refused.queue_position, data)
    if lost:
        out.note(f"coordctl: {lost[0]}; the command was stopped")
        out.result({"acquired": True, "lost": lost[0].reason, "exit_status": status}, None)
        return Exit.ERROR
    out.result({"acquired": True, "fencing_token": lease.fencing_token, "exit_status": status}, None)
    return status if status >= 0 else 128 - status
