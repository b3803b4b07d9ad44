"""``coordctl election ...``: run a command only while leader, see who leads, follow the changes.

coordctl election campaign scheduler --value host-a -- ./scheduler.sh   # runs only while leader
coordctl election leader scheduler       # prints: TERM VALUE (exit 1 when nobody leads)
coordctl election observe scheduler      # one line per change, in order, until interrupted

`campaign` waits (up to --wait, else as long as it takes) until elected, then runs the command with
COORD_ELECTION_NAME and COORD_ELECTION_TERM in its environment and exits with its status; the
leadership ends the moment the command exits. If the leadership is lost while the command runs,
the command gets SIGTERM (SIGKILL after --grace) and coordctl exits 4. It exits 1 without running
the command when not elected within --wait.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from typing import Any

from ..client import Client
from ..election import ChangeKind, Leader, LeaderChange, LeadershipLost, NotElected
from ._common import Exit, Output, duration, positive_int, time_text, value_json, value_text


def register(subparsers: Any) -> None:
    """Add the ``election`` group and its commands."""
    group = subparsers.add_parser(
        "election",
        help="run a command while leader; see who leads and follow the changes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = group.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    campaign = commands.add_parser(
        "campaign",
        help="run a command only while leader (exit with its status; 1 if not elected)",
        description="Campaign in NAME; once elected, run CMD while leading and resign when it exits.",
    )
    campaign.add_argument("name")
    _campaign_options(campaign)
    campaign.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...", help="the command to run"
    )
    campaign.set_defaults(handler=_campaign)

    leader = commands.add_parser("leader", help="print who leads: TERM VALUE (exit 1 when nobody leads)")
    leader.add_argument("name")
    leader.set_defaults(handler=_leader)

    observe = commands.add_parser(
        "observe", help="print the state, then every change of leadership, one line each"
    )
    observe.add_argument("name")
    observe.add_argument("--after", metavar="REVISION", help="resume after this revision (no state first)")
    observe.add_argument("--count", type=positive_int, metavar="N", help="stop after N lines")
    observe.set_defaults(handler=_observe)


def _campaign_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--value", default="", help="what the leader publishes (its address, its host)")
    parser.add_argument("--ttl", type=duration, help="the lease: 500ms, 10s (default: the server's)")
    parser.add_argument("--wait", type=duration, help="give up if not elected this soon (default: wait on)")
    parser.add_argument(
        "--grace", type=duration, default=10.0, help="SIGKILL the command this long after SIGTERM (10s)"
    )


def _leader_json(leader: Leader | None) -> dict[str, Any] | None:
    if leader is None:
        return None
    return {
        "term": leader.term,
        **value_json(leader.value),
        "elect_time": time_text(leader.elect_time),
        "update_time": time_text(leader.update_time),
    }


def _leader(client: Client, args: argparse.Namespace, out: Output) -> int:
    state = client.election(args.name).state()
    data = {"name": args.name, "leader": _leader_json(state.leader), "revision": state.revision}
    if state.leader is None:
        out.result(data, None)
        out.note(f"{args.name}: nobody leads")
        return Exit.NOT_MET
    out.result(data, f"{state.leader.term} {value_text(state.leader.value)}")
    return Exit.OK


def _change_line(change: LeaderChange) -> str:
    """``REVISION KIND ...``: who leads after the change, or which term ended."""
    head = f"{change.revision} {change.kind.value}" + (" (gap)" if change.gap else "")
    if change.kind is ChangeKind.ENDED:
        reason = change.end_reason.value if change.end_reason else "ended"
        return f"{head} term {change.ended_term} ({reason})"
    if change.leader is None:
        return f"{head}: nobody leads"
    return f"{head} term {change.leader.term} {value_text(change.leader.value)}"


def _change_json(change: LeaderChange) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": change.kind.value,
        "revision": change.revision,
        "leader": _leader_json(change.leader),
        "change_time": time_text(change.change_time),
    }
    if change.kind is ChangeKind.ENDED:
        data.update(
            ended_term=change.ended_term, end_reason=change.end_reason.value if change.end_reason else None
        )
    if change.gap:
        data["gap"] = True
    return data


def _observe(client: Client, args: argparse.Namespace, out: Output) -> int:
    seen = 0
    try:
        with client.election(args.name).observe(after=args.after) as changes:
            for change in changes:
                out.result(_change_json(change), _change_line(change))
                out.stdout.flush()
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    return Exit.OK


def _command(args: argparse.Namespace) -> list[str]:
    """The command of ``campaign``; options between NAME and ``--`` are parsed into ``args`` too."""
    rest: list[str] = args.cmd
    if rest[:1] == ["--"]:
        rest = rest[1:]
    elif rest[:1] and rest[0].startswith("-"):
        if "--" not in rest:
            raise ValueError(f"put -- between the options and the command (after {rest[0]!r})")
        late = argparse.ArgumentParser(prog="coordctl election campaign", add_help=False)
        _campaign_options(late)
        late.parse_args(rest[: rest.index("--")], namespace=args)
        rest = rest[rest.index("--") + 1 :]
    if not rest:
        raise ValueError(
            "campaign needs a command: coordctl election campaign NAME [options] -- CMD [ARGS...]"
        )
    return rest


def _stop(child: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if the command is still running ``grace`` seconds later."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(grace)
    except subprocess.TimeoutExpired:
        child.kill()


def _campaign(client: Client, args: argparse.Namespace, out: Output) -> int:
    command = _command(args)
    child: list[subprocess.Popen[bytes]] = []
    lost: list[LeadershipLost] = []

    def on_lost(error: LeadershipLost) -> None:
        lost.append(error)
        if child:
            _stop(child[0], args.grace)

    campaign = client.election(args.name).campaign(
        args.value, ttl=args.ttl, wait=args.wait, raise_on_lost=False, on_lost=on_lost
    )
    try:
        with campaign as leadership:
            out.note(f"{args.name}: elected, term {leadership.term}")
            env = {
                **os.environ,
                "COORD_ELECTION_NAME": args.name,
                "COORD_ELECTION_TERM": str(leadership.term),
            }
            try:
                child.append(subprocess.Popen(command, env=env))
            except OSError as error:
                out.usage_error(f"cannot run {command[0]!r}: {error.strerror or error}")
                return 127
            if leadership.lost.is_set():  # lost before the child existed
                _stop(child[0], args.grace)
            status = child[0].wait()
    except NotElected as refused:
        out.result({"elected": False, "leader_term": refused.leader_term, "position": refused.position}, None)
        out.note(f"coordctl: {refused}")
        return Exit.NOT_MET
    if lost:
        out.note(f"coordctl: {lost[0]}; the command was stopped")
        out.result(
            {"elected": True, "term": leadership.term, "lost": lost[0].reason, "exit_status": status}, None
        )
        return Exit.ERROR
    out.result({"elected": True, "term": leadership.term, "exit_status": status}, None)
    return status if status >= 0 else 128 - status
