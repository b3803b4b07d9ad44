"""No test asserts on wall-clock time.

A bound on how long something took (``assert time.monotonic() - started < 2``) fails on a loaded
machine and passes on a broken server whose slowness hides under the bound. Tests assert on what the
bound stood for instead: calls, Redis commands, wake-ups, which error came back. Speed is
``make bench``'s business.

The check follows this process's clock readings (``time.monotonic()``, ``perf_counter``, ``loop.time()``,
``datetime.now()``…) through assignments, ``list.append`` and function returns, and fails on any
``assert`` that compares the difference of two readings (an elapsed time) with ``<``, ``<=``, ``>`` or
``>=``. It leaves alone what is not an elapsed time of this process: a polling loop's timeout
(``assert time.monotonic() < end, "timed out"``), and durations Redis or the server reported
(``valid_for``, ``retry_after``, differences of Redis ``TIME``).
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# time.<clock>() and datetime.now(): readings of this process's clocks (Redis's TIME is not one).
CLOCKS = frozenset(
    {"monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "time", "time_ns", "process_time"}
)
NOW = frozenset({"now", "utcnow"})
BOUNDS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
RUNNERS = frozenset({"run", "run_until_complete", "wait_for"})  # asyncio.run(f()) is f()'s value

# What a name (or a function's return value) holds: a clock reading, an elapsed time, or a tuple whose
# elements at these positions are elapsed times.
READING, ELAPSED = "reading", "elapsed"
Taint = str | frozenset[int] | None


class _Scope:
    """One top-level function or class (with what is nested in it), or the module's other statements."""

    def __init__(
        self, node: ast.AST, clock_names: frozenset[str], module_functions: dict[str, Taint]
    ) -> None:
        self.node = node
        self.clock_names = clock_names  # names bound by `from time import monotonic`
        self.names: dict[str, Taint] = {}
        # What functions return: those nested here first (each test has its own `main`), then the module's.
        self.functions: dict[str, Taint] = {}
        self.module_functions = module_functions

    # -- classification ----------------------------------------------------------------------------

    def _is_clock_call(self, node: ast.AST) -> bool:
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        if isinstance(func, ast.Name):
            return func.id in self.clock_names
        if not isinstance(func, ast.Attribute):
            return False
        base = func.value
        if func.attr in CLOCKS and isinstance(base, ast.Name) and base.id == "time":
            return True
        if func.attr in NOW and _name_of(base) in {"datetime", "date"}:
            return True
        return func.attr == "time" and not node.args and _is_loop(base)

    def _is_reading(self, node: ast.AST) -> bool:
        return self._is_clock_call(node) or (
            isinstance(node, ast.Name) and self.names.get(node.id) == READING
        )

    def _reads(self, node: ast.AST) -> bool:
        return any(self._is_reading(child) for child in ast.walk(node))

    def _is_interval(self, node: ast.AST) -> bool:
        """The difference of two readings: an elapsed time."""
        return (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Sub)
            and self._reads(node.left)
            and self._reads(node.right)
        )

    def _returned(self, name: str) -> Taint:
        return self.functions[name] if name in self.functions else self.module_functions.get(name)

    def taint(self, node: ast.AST | None) -> Taint:
        """ELAPSED, READING, the positions of a tuple that hold elapsed times, or None."""
        if node is None:
            return None
        if isinstance(node, ast.Tuple | ast.List):
            positions = frozenset(i for i, e in enumerate(node.elts) if self.taint(e) == ELAPSED)
            if positions:
                return positions
        if isinstance(node, ast.Name) and isinstance(self.names.get(node.id), frozenset):
            return self.names[node.id]
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            positions = self.taint(node.value)
            if isinstance(positions, frozenset):
                return ELAPSED if node.slice.value in positions else None
        called = _called_function(node)
        if called is not None:
            returned = self._returned(called)
            if returned is not None:
                return returned
        reading = False
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and self.names.get(child.id) == ELAPSED:
                return ELAPSED
            if self._is_interval(child):
                return ELAPSED
            reading = reading or self._is_reading(child)
        return READING if reading else None

    # -- propagation -------------------------------------------------------------------------------

    def _bind(self, target: ast.AST, taint: Taint) -> bool:
        """Record ``taint`` for ``target``; True when something changed."""
        if isinstance(target, ast.Tuple | ast.List):
            changed = False
            for i, element in enumerate(target.elts):
                if isinstance(taint, frozenset):
                    changed |= self._bind(element, ELAPSED if i in taint else None)
            return changed
        while isinstance(target, ast.Subscript | ast.Starred):
            target = target.value
        if not isinstance(target, ast.Name) or _rank(taint) <= _rank(self.names.get(target.id)):
            return False
        self.names[target.id] = taint
        return True

    def _note_return(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        table = self.module_functions if function is self.node else self.functions
        changed = False
        for value in _returns(function):
            taint = self.taint(value)
            if _rank(taint) > _rank(table.get(function.name)):
                table[function.name] = taint
                changed = True
        return changed

    def propagate(self) -> None:
        for _ in range(10):  # to a fixpoint: a name's taint only ever rises
            changed = False
            for node in ast.walk(self.node):
                if isinstance(node, ast.Assign):
                    value = self.taint(node.value)
                    for target in node.targets:
                        changed |= self._bind(target, value)
                elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
                    changed |= self._bind(node.target, self.taint(node.value))
                elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                    if self.taint(node.iter) == ELAPSED:
                        changed |= self._bind(node.target, ELAPSED)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    collects = node.func.attr in {"append", "extend", "add", "insert"}
                    if collects and any(self.taint(a) == ELAPSED for a in node.args):
                        changed |= self._bind(node.func.value, ELAPSED)
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    changed |= self._note_return(node)
            if not changed:
                return

    def offending_asserts(self) -> Iterator[ast.Assert]:
        for node in ast.walk(self.node):
            if not isinstance(node, ast.Assert):
                continue
            for compare in (c for c in ast.walk(node.test) if isinstance(c, ast.Compare)):
                if any(isinstance(op, BOUNDS) for op in compare.ops) and any(
                    self.taint(side) == ELAPSED for side in (compare.left, *compare.comparators)
                ):
                    yield node
                    break


def _rank(taint: Taint) -> int:
    """None < READING < ELAPSED (or a tuple holding elapsed times)."""
    return 0 if taint is None else 1 if taint == READING else 2


def _name_of(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_loop(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        return _name_of(node.func) in {"get_running_loop", "get_event_loop"}
    return "loop" in _name_of(node)


def _called_function(node: ast.AST) -> str | None:
    """``f`` for ``f(...)``, ``await f(...)``, ``asyncio.run(f(...))`` and the like."""
    if isinstance(node, ast.Await):
        node = node.value
    if not isinstance(node, ast.Call):
        return None
    if _name_of(node.func) in RUNNERS and node.args:
        inner = _called_function(node.args[0])
        if inner is not None:
            return inner
    return node.func.id if isinstance(node.func, ast.Name) else None


def _returns(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.expr]:
    """The values ``function`` itself returns (not those of functions nested in it)."""
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Return) and node.value is not None:
            yield node.value
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            pending.extend(ast.iter_child_nodes(node))


def wall_clock_asserts(source: str, filename: str = "<test>") -> list[int]:
    """Line numbers of the asserts in ``source`` that bound an elapsed wall-clock time."""
    tree = ast.parse(source, filename)
    clock_names = frozenset(
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "time"
        for alias in node.names
        if alias.name in CLOCKS
    )
    module_functions: dict[str, Taint] = {}
    top = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    body = ast.Module(body=[n for n in tree.body if n not in top], type_ignores=[])
    scopes = [_Scope(node, clock_names, module_functions) for node in (body, *top)]
    for _ in range(3):  # what module-level functions return reaches the scopes that call them
        for scope in scopes:
            scope.propagate()
    return sorted({a.lineno for scope in scopes for a in scope.offending_asserts()})


def _test_sources() -> Iterable[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "node_modules" not in p.parts)


def test_no_test_asserts_on_wall_clock_time() -> None:
    found = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in _test_sources()
        for line in wall_clock_asserts(path.read_text(), str(path))
    ]
    assert not found, (
        "these asserts bound an elapsed wall-clock time; assert on what the bound stands for "
        "(calls, Redis commands, wake-ups, the error that came back) instead:\n" + "\n".join(found)
    )


# Each offender the check must catch, and each look-alike it must leave alone.
CAUGHT = """
import asyncio, time
from time import perf_counter

def direct():
    started = time.monotonic()
    assert time.monotonic() - started < 3

def named():
    started = perf_counter()
    took = perf_counter() - started
    assert took <= 0.5

def collected():
    timings = []
    for _ in range(5):
        started = time.monotonic()
        timings.append(time.monotonic() - started)
    assert max(timings) < 0.6

def returned():
    async def main():
        started = asyncio.get_running_loop().time()
        return 1, asyncio.get_running_loop().time() - started
    _, elapsed = asyncio.run(main())
    assert elapsed < 1.0

async def measure():
    started = time.monotonic()
    per_call_ms = (time.monotonic() - started) * 1000
    return 0, per_call_ms

def via_module_function():
    result = asyncio.run(measure())
    _, per_call_ms = result
    assert per_call_ms > 100
"""

LEFT_ALONE = """
import time
from datetime import UTC, datetime

def polling():
    end = time.monotonic() + 30
    while True:
        assert time.monotonic() < end, "timed out"
        break

def reported(grant, first, denied):
    assert 29_000 < grant.valid_for.ToMilliseconds() <= 30_000
    elapsed = denied.decide_ms - first.decide_ms  # Redis's clock
    assert abs(denied.retry_after_ms - (1000 - elapsed)) <= 1

def clock_agreement(decision):
    assert abs((decision.decide_time - datetime.now(UTC)).total_seconds()) < 60

def ordering():
    start = time.monotonic_ns()
    end = time.monotonic_ns()
    assert start <= end
"""


def test_the_check_catches_each_form_and_leaves_look_alikes_alone() -> None:
    caught = wall_clock_asserts(textwrap.dedent(CAUGHT))
    lines = CAUGHT.splitlines()
    assert [lines[n - 1].strip() for n in caught] == [
        "assert time.monotonic() - started < 3",
        "assert took <= 0.5",
        "assert max(timings) < 0.6",
        "assert elapsed < 1.0",
        "assert per_call_ms > 100",
    ]
    assert wall_clock_asserts(textwrap.dedent(LEFT_ALONE)) == []
