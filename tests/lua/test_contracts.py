"""Every Lua script of every service against its own contract header, and against a real Redis.

For each script (as ScriptSet composes it): Redis compiles it (SCRIPT LOAD gives the SHA the server
calls it by); its file opens with a contract header; every ``KEYS[n]`` and ``ARGV[n]`` its code uses
is documented in that header or in the header of a library it includes; and a call with the
documented keys, all under one hash tag, but without its arguments writes nothing (Redis keeps the
partial writes of a script that fails, so arguments are checked before the first write), on a
single node and on a 3-master Cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pytest
import redis
from redis.cluster import RedisCluster

from coord_server.redis import Script, ScriptSet

from ..conftest import RedisClusterProcess, RedisProcess

SERVICES = ("cache", "collections", "election", "envoy", "events", "lock", "ratelimit", "session")

HEADER = re.compile(r"\A--\[\[(.*?)\]\]", re.DOTALL)
INCLUDE = re.compile(r"^-- @include (\S+)$", re.MULTILINE)
# A reference in a header: KEYS[1], ARGV[12..], KEYS[1..4], ARGV[2 + 6(i-1) ..], KEYS[i].
HEADER_REF = re.compile(r"\b(KEYS|ARGV)\[([^\]]*)\]")
# A use in code: only literal indexes can be checked (a loop over ARGV is documented as a range).
CODE_REF = re.compile(r"\b(KEYS|ARGV)\[(\d+)\]")
COMMENTS = re.compile(r"--\[\[.*?\]\]|--[^\n]*", re.DOTALL)


@dataclass
class Documented:
    """The indexes of KEYS (or ARGV) a header documents: some exactly, and all from ``open_from`` on."""

    exact: set[int]
    open_from: float = float("inf")

    def covers(self, index: int) -> bool:
        return index in self.exact or index >= self.open_from

    def count(self) -> int:
        """How many the documented call passes: the highest exact index (at least one if open)."""
        return max(self.exact, default=1 if self.open_from < float("inf") else 0)


@cache
def files(service: str) -> dict[str, str]:
    folder = resources.files(f"coord_server.{service}").joinpath("scripts")
    return {
        entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua")
    }


def header(text: str) -> str:
    match = HEADER.match(text)
    return match.group(1) if match else ""


def body(text: str) -> str:
    return COMMENTS.sub("", text)


def includes(service: str, name: str) -> list[str]:
    """The libraries ``name`` includes, directly or through another library."""
    found: list[str] = []
    todo = INCLUDE.findall(files(service)[name])
    while todo:
        library = todo.pop()
        if library not in found:
            found.append(library)
            todo += INCLUDE.findall(files(service)[library])
    return found


def documented(*headers: str) -> dict[str, Documented]:
    docs = {"KEYS": Documented(set()), "ARGV": Documented(set())}
    for text in headers:
        for kind, inside in HEADER_REF.findall(text):
            numbers = [int(n) for n in re.findall(r"\d+", inside)]
            doc = docs[kind]
            if ".." in inside and numbers and inside.strip().endswith(".."):  # n.. : n and up
                doc.open_from = min(doc.open_from, numbers[0])
            elif ".." in inside and len(numbers) == 2:  # n..m
                doc.exact.update(range(numbers[0], numbers[1] + 1))
            elif re.fullmatch(r"\s*\d+\s*", inside):
                doc.exact.add(numbers[0])
            else:  # KEYS[i]: any number of them
                doc.open_from = min(doc.open_from, 1)
    return docs


def scripts() -> list[tuple[str, str]]:
    return [(service, name) for service in SERVICES for name in ScriptSet(f"coord_server.{service}").names()]


def libraries() -> list[tuple[str, str]]:
    return [
        (service, name) for service in SERVICES for name in sorted(files(service)) if name.startswith("_")
    ]


def composed(service: str, name: str) -> Script:
    return ScriptSet(f"coord_server.{service}")[name]


def script_id(case: tuple[str, str]) -> str:
    return "/".join(case)


def test_every_service_has_scripts_and_libraries_are_not_scripts() -> None:
    found = scripts()
    assert {service for service, _ in found} == set(SERVICES)
    assert libraries(), "the lock and session libraries"
    assert not set(libraries()) & set(found)


@pytest.mark.parametrize("case", scripts(), ids=script_id)
def test_the_file_opens_with_a_contract_header(case: tuple[str, str]) -> None:
    service, name = case
    text = files(service)[name]
    head = header(text)
    assert head, f"{name}.lua must open with a --[[ ... ]] contract header"
    assert "KEYS" in head, f"{name}.lua: the header names the keys"
    assert "Returns" in head, f"{name}.lua: the header says what the script returns"
    for library in INCLUDE.findall(text):  # includes come after the header, so it still opens the source
        assert text.index(f"-- @include {library}") > len(head)
    assert composed(service, name).source.startswith("--[[" + head + "]]")


@pytest.mark.parametrize("case", scripts() + libraries(), ids=script_id)
def test_every_key_and_argument_used_is_documented(case: tuple[str, str]) -> None:
    service, name = case
    text = files(service)[name]
    docs = documented(header(text), *(header(files(service)[lib]) for lib in includes(service, name)))
    for kind, index in {(k, int(i)) for k, i in CODE_REF.findall(body(text))}:
        assert docs[kind].covers(index), f"{service}/{name}.lua uses {kind}[{index}] without documenting it"


def test_the_header_parser_sees_what_is_missing() -> None:
    """The check above can fail: a use the header does not mention is found."""
    text = "--[[ Demo.\n  KEYS[1] a   ARGV[2..] rest\n  Returns 1. ]]\nreturn {KEYS[2], ARGV[1], ARGV[9]}"
    docs = documented(header(text))
    uses = {(k, int(i)) for k, i in CODE_REF.findall(body(text))}
    assert {u for u in uses if not docs[u[0]].covers(u[1])} == {("KEYS", 2), ("ARGV", 1)}


def keys_for(service: str, name: str) -> list[str]:
    """The documented number of keys, all under one hash tag."""
    text = files(service)[name]
    docs = documented(header(text), *(header(files(service)[lib]) for lib in includes(service, name)))
    return [f"{{lua-test}}:{name}:{i}" for i in range(1, docs["KEYS"].count() + 1)]


def call_without_arguments(client: redis.Redis | RedisCluster, script: Script, keys: list[str]) -> object:
    try:
        return client.eval(script.source, len(keys), *keys)
    except redis.ResponseError as exc:
        assert "CROSSSLOT" not in str(exc)
        return exc


@pytest.fixture
def single(redis_single: RedisProcess) -> RedisProcess:
    with redis_single.client() as r:
        r.flushall()
    return redis_single


@pytest.fixture
def cluster(redis_cluster: RedisClusterProcess) -> RedisClusterProcess:
    redis_cluster.flush()
    return redis_cluster


@pytest.mark.parametrize("case", scripts(), ids=script_id)
def test_the_composed_script_loads_under_its_sha(case: tuple[str, str], single: RedisProcess) -> None:
    script = composed(*case)
    with single.client() as r:
        assert r.script_load(script.source) == script.sha
        assert r.script_exists(script.sha) == [True]


@pytest.mark.parametrize("case", scripts(), ids=script_id)
def test_a_call_without_its_arguments_writes_nothing(case: tuple[str, str], single: RedisProcess) -> None:
    service, name = case
    script = composed(service, name)
    with single.client() as r:
        reply = call_without_arguments(r, script, keys_for(service, name))
        assert r.dbsize() == 0, f"{service}/{name}.lua wrote before checking its arguments ({reply!r})"
    if "ARGV" not in header(files(service)[name]):  # nothing to forget: the call is a normal one
        assert not isinstance(reply, Exception), reply


@pytest.mark.cluster
def test_every_script_loads_and_keeps_to_one_slot_on_a_cluster(cluster: RedisClusterProcess) -> None:
    for service, name in scripts():
        script = composed(service, name)
        for node in cluster.nodes:
            with node.client() as r:
                assert r.script_load(script.source) == script.sha
        with cluster.client() as r:
            reply = call_without_arguments(r, script, keys_for(service, name))
        written = 0
        for node in cluster.nodes:
            with node.client() as r:
                written += int(r.dbsize())
        assert written == 0, f"{service}/{name}.lua wrote before checking its arguments ({reply!r})"
