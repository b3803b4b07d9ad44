"""``coordctl map|list|set|zset ...``: maps, lists, sets and sorted sets (leaderboards) from the shell.

coordctl map set user:42 name=Ada lang=en --ttl 1h
coordctl map get user:42 name             # prints: Ada
coordctl map getall user:42               # FIELD<TAB>VALUE per line
coordctl list push jobs a b
coordctl list pop jobs --wait 5           # prints the value (exit 1 if none came)
coordctl set add tags red blue
coordctl zset incr board alice 10         # prints the new score
coordctl zset top board 10                # RANK<TAB>MEMBER<TAB>SCORE per line, highest score first
coordctl zset rank board alice
coordctl --json zset around board alice 2

Every write takes --ttl, --keep-ttl and --if-version N; a write whose --if-version did not match
changes nothing and exits 1. Ranks count from 0. Values are UTF-8 text; non-UTF-8 values print as
base64:... (--json says which encoding). A negative bound that is not a plain number (-inf) goes
after --: coordctl zset rangebyscore board -- -inf 10.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

from ..client import Client
from ..collections import CollectionState, Handle, PutCondition, Ranked, Written
from ._common import (
    Exit,
    Output,
    duration,
    duration_or_default,
    positive_int,
    time_text,
    value_json,
    value_text,
)

Commands = Any  # argparse's private _SubParsersAction
Parser = argparse.ArgumentParser

_TTL_HELP = "time to live: 500ms, 10s, 5m, 1h30m, 1d (0 or omitted: the server's default)"


def register(subparsers: Any) -> None:
    """Add the ``map``, ``list``, ``set`` and ``zset`` groups and their commands."""
    _register_map(_group(subparsers, "map", "read and write maps (fields with values, like a hash)"))
    _register_list(_group(subparsers, "list", "push, pop (optionally waiting), range and trim lists"))
    _register_set(_group(subparsers, "set", "add, remove, test and list set members"))
    _register_zset(_group(subparsers, "zset", "sorted sets and leaderboards: scores, ranks, top, around"))


def _group(subparsers: Any, name: str, help_text: str) -> Commands:
    group = subparsers.add_parser(
        name, help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = group.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True
    return commands


def _command(commands: Commands, name: str, help_text: str, handler: Callable[..., int]) -> Parser:
    parser: Parser = commands.add_parser(name, help=help_text)
    parser.add_argument("name", help="the collection's name")
    parser.set_defaults(handler=handler)
    return parser


def _write(commands: Commands, name: str, help_text: str, handler: Callable[..., int]) -> Parser:
    """A write command: its name argument and the options every write takes."""
    parser = _command(commands, name, help_text, handler)
    parser.add_argument("--ttl", type=duration_or_default, help=_TTL_HELP)
    parser.add_argument(
        "--keep-ttl", action="store_true", help="keep an existing collection's expiry (a new one gets --ttl)"
    )
    parser.add_argument(
        "--if-version", type=positive_int, metavar="N", help="only if the collection's version is N"
    )
    return parser


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"ttl": args.ttl, "keep_ttl": args.keep_ttl, "if_version": args.if_version}


def _common(commands: Commands, handle: Callable[[Client, str], Handle], elements: str) -> None:
    """``len``, ``delete`` and ``touch``, which every kind has."""
    _command(
        commands, "len", f"print the number of {elements} (--json: version and expiry too)", _len
    ).set_defaults(handle=handle)
    delete = _command(commands, "delete", "remove the whole collection (exit 1 if nothing was)", _delete)
    delete.add_argument("--if-version", type=positive_int, metavar="N", help="only if its version is N")
    delete.set_defaults(handle=handle)
    touch = _command(commands, "touch", "give the collection a new TTL (exit 1 if it does not exist)", _touch)
    touch.add_argument("ttl", nargs="?", type=duration_or_default, help=_TTL_HELP)
    touch.set_defaults(handle=handle)


# ---------------------------------------------------------------- argument types


def _field_value(text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=VALUE")
    return field, value


def _number(text: str) -> int | float:
    """An increment's delta: an integer when it reads as one, else a finite float."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{text!r} must be finite")
    return number


def _score(text: str) -> float:
    """A score or a score bound: a number, or -inf / +inf."""
    try:
        score = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a score (a number, -inf or +inf)") from None
    if math.isnan(score):
        raise argparse.ArgumentTypeError("a score cannot be NaN")
    return score


def _member_score(text: str) -> tuple[str, float]:
    member, sep, score = text.rpartition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not MEMBER=SCORE")
    return member, _score(score)


def _non_negative(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return number


# ---------------------------------------------------------------- output


def _state_json(name: str, state: CollectionState) -> dict[str, Any]:
    return {
        "name": name,
        "exists": state.exists,
        "version": state.version,
        "expire_time": time_text(state.expire_time),
        "length": state.length,
    }


def _written(out: Output, name: str, result: Written, text: str, **extra: Any) -> int:
    """Print a write's result; exit 1 when its --if-version did not match."""
    data = {**_state_json(name, result), "applied": result.applied, **extra}
    if result.applied:
        out.result(data, text)
        return Exit.OK
    out.result(data, None)
    out.note(f"{name}: not applied: version mismatch (version {result.version})")
    return Exit.NOT_MET


def _score_text(score: float) -> str:
    """A score as people read it: 10, not 10.0; exact otherwise (repr)."""
    if score.is_integer() and abs(score) < 2**53:
        return str(int(score))
    return repr(score)


def _score_json(score: float) -> float | str:
    """A score for JSON, which has no infinities: those become "inf" and "-inf"."""
    return score if math.isfinite(score) else ("inf" if score > 0 else "-inf")


def _ranked_json(r: Ranked) -> dict[str, Any]:
    return {"member": r.member, "rank": r.rank, "score": _score_json(r.score)}


def _ranked_lines(name: str, ranked: list[Ranked], out: Output) -> int:
    lines = [f"{r.rank}\t{r.member}\t{_score_text(r.score)}" for r in ranked]
    out.result({"name": name, "members": [_ranked_json(r) for r in ranked]}, "\n".join(lines) or None)
    return Exit.OK


def _values(out: Output, name: str, values: list[bytes], data: dict[str, Any], empty: str) -> int:
    """Print values one per line (``data`` plus the values in JSON); exit 1 when there are none."""
    out.result(
        {**data, "values": [value_json(v) for v in values]}, "\n".join(map(value_text, values)) or None
    )
    if not values:
        out.note(f"{name}: {empty}")
        return Exit.NOT_MET
    return Exit.OK


# ---------------------------------------------------------------- every kind


def _len(client: Client, args: argparse.Namespace, out: Output) -> int:
    state = args.handle(client, args.name).state()
    out.result(_state_json(args.name, state), str(state.length))
    return Exit.OK


def _delete(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = args.handle(client, args.name).delete(if_version=args.if_version)
    data = {**_state_json(args.name, result), "deleted": result.deleted}
    if result.deleted:
        out.result(data, f"deleted {args.name}")
        return Exit.OK
    out.result(data, None)
    why = "version mismatch" if result.exists else "not found"
    out.note(f"{args.name}: not deleted: {why}" + (f" (version {result.version})" if result.exists else ""))
    return Exit.NOT_MET


def _touch(client: Client, args: argparse.Namespace, out: Output) -> int:
    state = args.handle(client, args.name).touch(args.ttl)
    if not state.exists:
        out.result(_state_json(args.name, state), None)
        out.note(f"{args.name}: not found")
        return Exit.NOT_MET
    out.result(_state_json(args.name, state), f"{args.name} expires {time_text(state.expire_time)}")
    return Exit.OK


# ---------------------------------------------------------------- map


def _register_map(commands: Commands) -> None:
    put = _write(
        commands, "set", "write fields: FIELD=VALUE ... (exit 1 if --if-version did not match)", _map_set
    )
    put.add_argument("fields", nargs="+", type=_field_value, metavar="FIELD=VALUE")
    get = _command(
        commands, "get", "print a field's value, or FIELD<TAB>VALUE per field (exit 1 on a miss)", _map_get
    )
    get.add_argument("fields", nargs="+", metavar="FIELD")
    _command(commands, "getall", "print FIELD<TAB>VALUE for every field, sorted by field", _map_getall)
    remove = _write(commands, "remove", "delete fields", _map_remove)
    remove.add_argument("fields", nargs="+", metavar="FIELD")
    incr = _write(
        commands, "incr", "add DELTA (default 1; an integer or a float) to a field; print it", _map_incr
    )
    incr.add_argument("field")
    incr.add_argument("delta", nargs="?", type=_number, default=1)
    _common(commands, Client.map, "fields")


def _map_set(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.map(args.name).set(dict(args.fields), **_options(args))
    return _written(out, args.name, result, f"{args.name}: {result.added} added", added=result.added)


def _map_get(client: Client, args: argparse.Namespace, out: Output) -> int:
    m = client.map(args.name)
    if len(args.fields) == 1 and not out.json:
        value = m.get(args.fields[0])
        if value is None:
            out.note(f"{args.fields[0]}: not found")
            return Exit.NOT_MET
        try:
            out.result({}, value.decode("utf-8"))
        except UnicodeDecodeError:  # binary: the raw bytes, so `coordctl map get m f > file` works
            out.stdout.flush()
            sys.stdout.buffer.write(value)
            sys.stdout.buffer.flush()
        return Exit.OK
    found = m.get_many(args.fields)
    entries = [
        {"field": f, "found": f in found, **(value_json(found[f]) if f in found else {})} for f in args.fields
    ]
    lines = [f"{f}\t{value_text(found[f])}" for f in args.fields if f in found]
    out.result({"name": args.name, "values": entries}, "\n".join(lines) or None)
    for missing in [f for f in args.fields if f not in found]:
        out.note(f"{missing}: not found")
    return Exit.OK if len(found) == len(set(args.fields)) else Exit.NOT_MET


def _map_getall(client: Client, args: argparse.Namespace, out: Output) -> int:
    fields = sorted(client.map(args.name).get_all().items())
    lines = "\n".join(f"{f}\t{value_text(v)}" for f, v in fields)
    out.result({"name": args.name, "fields": {f: value_json(v) for f, v in fields}}, lines or None)
    return Exit.OK


def _map_remove(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.map(args.name).remove(*args.fields, **_options(args))
    return _written(out, args.name, result, f"{args.name}: {result.removed} removed", removed=result.removed)


def _map_incr(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.map(args.name).increment(args.field, args.delta, **_options(args))
    return _written(out, args.name, result, str(result.value), field=args.field, value=result.value)


# ---------------------------------------------------------------- list


def _register_list(commands: Commands) -> None:
    push = _write(commands, "push", "add values to the back (or --front); print the new length", _list_push)
    push.add_argument("values", nargs="+", metavar="VALUE")
    push.add_argument("--front", action="store_true", help="push to the front (the last value ends up first)")
    push.add_argument(
        "--max-length", type=positive_int, metavar="N", help="then trim the other end to N values"
    )
    pop = _write(
        commands, "pop", "take values from the front (or --back), one per line (exit 1 if none)", _list_pop
    )
    pop.add_argument("--count", type=positive_int, default=1, metavar="N", help="take up to N values")
    pop.add_argument("--back", action="store_true", help="take from the back")
    pop.add_argument("--wait", type=duration, metavar="S", help="wait up to S for a value on an empty list")
    span = _command(
        commands, "range", "print the values from START to STOP (default: all), one per line", _list_range
    )
    span.add_argument("start", nargs="?", type=int, default=0)
    span.add_argument("stop", nargs="?", type=int, default=-1)
    remove = _write(
        commands,
        "remove",
        "delete occurrences of VALUE (--count: first N; negative from the back)",
        _list_remove,
    )
    remove.add_argument("value")
    remove.add_argument("--count", type=int, default=0, metavar="N", help="0 (default): every occurrence")
    trim = _write(commands, "trim", "keep only positions START to STOP", _list_trim)
    trim.add_argument("start", type=int)
    trim.add_argument("stop", type=int)
    _common(commands, Client.list, "values")


def _list_push(client: Client, args: argparse.Namespace, out: Output) -> int:
    values = [v.encode("utf-8") for v in args.values]
    result = client.list(args.name).push(
        *values, front=args.front, max_length=args.max_length, **_options(args)
    )
    return _written(out, args.name, result, str(result.length), trimmed=result.trimmed)


def _list_pop(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.list(args.name).pop(args.count, wait=args.wait, front=not args.back, **_options(args))
    data = {**_state_json(args.name, result), "applied": result.applied}
    if not result.applied:
        return _written(out, args.name, result, "", values=[])
    return _values(out, args.name, result.values, data, "empty")


def _list_range(client: Client, args: argparse.Namespace, out: Output) -> int:
    values = client.list(args.name).range(args.start, args.stop)
    out.result(
        {"name": args.name, "values": [value_json(v) for v in values]},
        "\n".join(map(value_text, values)) or None,
    )
    return Exit.OK


def _list_remove(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.list(args.name).remove(args.value, args.count, **_options(args))
    return _written(out, args.name, result, f"{args.name}: {result.removed} removed", removed=result.removed)


def _list_trim(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.list(args.name).trim(args.start, args.stop, **_options(args))
    return _written(out, args.name, result, f"{args.name}: {result.removed} removed", removed=result.removed)


# ---------------------------------------------------------------- set


def _register_set(commands: Commands) -> None:
    add = _write(commands, "add", "add members", _set_add)
    add.add_argument("members", nargs="+", metavar="MEMBER")
    remove = _write(commands, "remove", "remove members", _set_remove)
    remove.add_argument("members", nargs="+", metavar="MEMBER")
    contains = _command(
        commands, "contains", "print MEMBER<TAB>yes|no (exit 1 if any is missing)", _set_contains
    )
    contains.add_argument("members", nargs="+", metavar="MEMBER")
    _command(commands, "members", "print every member, sorted, one per line", _set_members)
    pop = _write(commands, "pop", "take random members, one per line (exit 1 if none)", _set_pop)
    pop.add_argument("--count", type=positive_int, default=1, metavar="N", help="take up to N members")
    _common(commands, Client.set, "members")


def _set_add(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.set(args.name).add(*args.members, **_options(args))
    return _written(out, args.name, result, f"{args.name}: {result.added} added", added=result.added)


def _set_remove(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.set(args.name).remove(*args.members, **_options(args))
    return _written(out, args.name, result, f"{args.name}: {result.removed} removed", removed=result.removed)


def _set_contains(client: Client, args: argparse.Namespace, out: Output) -> int:
    held = client.set(args.name).contains_many(args.members)
    lines = "\n".join(f"{m}\t{'yes' if held[m] else 'no'}" for m in args.members)
    out.result({"name": args.name, "contains": {m: held[m] for m in args.members}}, lines)
    return Exit.OK if all(held.values()) else Exit.NOT_MET


def _set_members(client: Client, args: argparse.Namespace, out: Output) -> int:
    members = sorted(client.set(args.name).members())
    out.result({"name": args.name, "members": members}, "\n".join(members) or None)
    return Exit.OK


def _set_pop(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.set(args.name).pop(args.count, **_options(args))
    data = {**_state_json(args.name, result), "applied": result.applied, "members": result.values}
    if not result.applied:
        return _written(out, args.name, result, "", members=[])
    out.result(data, "\n".join(result.values) or None)
    if not result.values:
        out.note(f"{args.name}: empty")
        return Exit.NOT_MET
    return Exit.OK


# ---------------------------------------------------------------- zset


def _register_zset(commands: Commands) -> None:
    put = _write(
        commands, "put", "set scores: MEMBER=SCORE ... (exit 1 if --if-version did not match)", _zset_put
    )
    put.add_argument("members", nargs="+", type=_member_score, metavar="MEMBER=SCORE")
    condition = put.add_mutually_exclusive_group()
    for choice in PutCondition:
        flag = "--" + choice.value.replace("_", "-")
        condition.add_argument(
            flag, dest="condition", action="store_const", const=choice, help=_CONDITION_HELP[choice]
        )
    incr = _write(
        commands, "incr", "add DELTA (default 1) to a member's score; print the new score", _zset_incr
    )
    incr.add_argument("member")
    incr.add_argument("delta", nargs="?", type=_score, default=1.0)
    remove = _write(commands, "remove", "remove members", _zset_remove)
    remove.add_argument("members", nargs="+", metavar="MEMBER")
    score = _command(
        commands, "score", "print MEMBER<TAB>SCORE per member held (exit 1 on a miss)", _zset_score
    )
    score.add_argument("members", nargs="+", metavar="MEMBER")
    rank = _command(
        commands, "rank", "print RANK<TAB>MEMBER<TAB>SCORE, rank 0 the highest (exit 1 if absent)", _zset_rank
    )
    rank.add_argument("member")
    _ascending(rank)
    top = _command(commands, "top", "print the N best (default 10): RANK<TAB>MEMBER<TAB>SCORE", _zset_top)
    top.add_argument("n", nargs="?", type=positive_int, default=10)
    _ascending(top)
    around = _command(
        commands, "around", "print MEMBER and N ranked on each side (exit 1 if absent)", _zset_around
    )
    around.add_argument("member")
    around.add_argument("n", nargs="?", type=_non_negative, default=5)
    around.add_argument("--before", type=_non_negative, metavar="B", help="B ranked before it, instead of N")
    around.add_argument("--after", type=_non_negative, metavar="A", help="A ranked after it, instead of N")
    _ascending(around)
    span = _command(
        commands, "range", "print ranks START to STOP (default: all), lowest score first", _zset_range
    )
    span.add_argument("start", nargs="?", type=int, default=0)
    span.add_argument("stop", nargs="?", type=int, default=-1)
    span.add_argument("--descending", action="store_true", help="highest score first")
    by_score = _command(
        commands, "rangebyscore", "print MEMBER<TAB>SCORE with scores from MIN to MAX", _zset_by_score
    )
    by_score.add_argument("min", nargs="?", type=_score, help="the lowest score (default: no bound)")
    by_score.add_argument("max", nargs="?", type=_score, help="the highest score (default: no bound)")
    by_score.add_argument("--exclusive-min", action="store_true", help="leave out scores equal to MIN")
    by_score.add_argument("--exclusive-max", action="store_true", help="leave out scores equal to MAX")
    by_score.add_argument("--descending", action="store_true", help="highest score first")
    by_score.add_argument("--offset", type=_non_negative, default=0, metavar="N", help="skip N members first")
    by_score.add_argument("--limit", type=positive_int, metavar="N", help="print at most N members")
    _common(commands, Client.sorted_set, "members")


_CONDITION_HELP = {
    PutCondition.IF_NEW: "only add new members",
    PutCondition.IF_EXISTS: "only change existing members",
    PutCondition.IF_HIGHER: "add new members, raise existing ones, never lower them",
    PutCondition.IF_LOWER: "add new members, lower existing ones, never raise them",
}


def _ascending(parser: Parser) -> None:
    parser.add_argument("--ascending", action="store_true", help="rank from the lowest score instead")


def _zset_put(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.sorted_set(args.name).put(dict(args.members), condition=args.condition, **_options(args))
    text = f"{args.name}: {result.added} added, {result.updated} updated"
    return _written(out, args.name, result, text, added=result.added, updated=result.updated)


def _zset_incr(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.sorted_set(args.name).increment(args.member, args.delta, **_options(args))
    score = result.value
    text = "" if score is None else _score_text(score)
    return _written(
        out, args.name, result, text, member=args.member, score=None if score is None else _score_json(score)
    )


def _zset_remove(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.sorted_set(args.name).remove(*args.members, **_options(args))
    return _written(out, args.name, result, f"{args.name}: {result.removed} removed", removed=result.removed)


def _zset_score(client: Client, args: argparse.Namespace, out: Output) -> int:
    scores = client.sorted_set(args.name).score_many(args.members)
    entries = [
        {"member": m, "found": m in scores, **({"score": _score_json(scores[m])} if m in scores else {})}
        for m in args.members
    ]
    lines = "\n".join(f"{m}\t{_score_text(scores[m])}" for m in args.members if m in scores)
    out.result({"name": args.name, "scores": entries}, lines or None)
    for missing in [m for m in args.members if m not in scores]:
        out.note(f"{missing}: not found")
    return Exit.OK if all(m in scores for m in args.members) else Exit.NOT_MET


def _zset_rank(client: Client, args: argparse.Namespace, out: Output) -> int:
    ranked = client.sorted_set(args.name).rank(args.member, descending=not args.ascending)
    if ranked is None:
        out.result({"name": args.name, "member": args.member, "found": False}, None)
        out.note(f"{args.member}: not found")
        return Exit.NOT_MET
    text = f"{ranked.rank}\t{ranked.member}\t{_score_text(ranked.score)}"
    out.result({"name": args.name, "found": True, **_ranked_json(ranked)}, text)
    return Exit.OK


def _zset_top(client: Client, args: argparse.Namespace, out: Output) -> int:
    return _ranked_lines(
        args.name, client.sorted_set(args.name).top(args.n, descending=not args.ascending), out
    )


def _zset_around(client: Client, args: argparse.Namespace, out: Output) -> int:
    window = client.sorted_set(args.name).around(
        args.member, args.n, before=args.before, after=args.after, descending=not args.ascending
    )
    code = _ranked_lines(args.name, window, out)
    if not window:
        out.note(f"{args.member}: not found")
        return Exit.NOT_MET
    return code


def _zset_range(client: Client, args: argparse.Namespace, out: Output) -> int:
    members = client.sorted_set(args.name).range_by_rank(args.start, args.stop, descending=args.descending)
    return _ranked_lines(args.name, members, out)


def _zset_by_score(client: Client, args: argparse.Namespace, out: Output) -> int:
    pairs = client.sorted_set(args.name).range_by_score(
        args.min,
        args.max,
        min_exclusive=args.exclusive_min,
        max_exclusive=args.exclusive_max,
        descending=args.descending,
        offset=args.offset,
        limit=args.limit,
    )
    data = {"name": args.name, "members": [{"member": m, "score": _score_json(s)} for m, s in pairs]}
    out.result(data, "\n".join(f"{m}\t{_score_text(s)}" for m, s in pairs) or None)
    return Exit.OK
