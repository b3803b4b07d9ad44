"""Named rate limit policies from a YAML file, loaded at start and reloaded on SIGHUP.

The file looks like this (``period`` takes 250ms, 5s, 2m, 1h, 1d or a number of seconds, and must be
a whole number of milliseconds: 1.5ms is refused, not rounded)::

    policies:
      login:                      # a name: 1-64 of A-Z a-z 0-9 _ . : -
        algorithm: fixed_window   # token_bucket (default) | sliding_window | sliding_log | fixed_window
        limit: 5
        period: 15m
      api:
        limit: 100
        period: 1m
        burst: 20                 # token bucket only; default = limit
        on_backend_error: open    # closed (default) | open

A reload swaps one immutable mapping, so requests in flight keep the policies they resolved and none is
dropped. A file that does not parse or holds an invalid policy is refused as a whole with a message
naming the file and line, and the previous policies stay in force.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .._yaml import compose, is_null, pairs
from ..config import ConfigError, parse_duration
from ..errors import InvalidArgument
from .rules import Algorithm, FailureMode, Rule, check_name, make_rule

log = logging.getLogger(__name__)

_ALGORITHMS = {a.name.lower(): a for a in Algorithm}
_FAILURE_MODES = {m.name.lower(): m for m in FailureMode}
_FIELDS = {"algorithm", "limit", "period", "burst", "on_backend_error"}


class PolicyError(ConfigError):
    """The policy file is malformed; the message names the file and line."""


def parse_policies(text: str, source: str) -> Mapping[str, Rule]:
    """Parse a policy file's text; ``source`` names it in error messages."""

    root, fail = compose(text, source, PolicyError)
    if root is None:
        return MappingProxyType({})
    top = pairs(root, fail, "the file must be a mapping with a 'policies' key")
    policies_node: yaml.Node | None = None
    for key, value in top:
        if key.value != "policies":
            raise fail(key, f"unknown top-level key {key.value!r} (expected 'policies')")
        policies_node = value
    if policies_node is None or is_null(policies_node):
        return MappingProxyType({})
    rules: dict[str, Rule] = {}
    for name_node, body in pairs(policies_node, fail, "'policies' must map names to policies"):
        name = name_node.value
        try:
            check_name("name", name)
        except InvalidArgument as exc:
            raise fail(name_node, f"policy name {name!r}: {exc.violations[0].description}") from None
        if name in rules:
            raise fail(name_node, f"policy {name!r} is defined twice")
        rules[name] = _rule(name, body, fail)
    return MappingProxyType(rules)


def _rule(name: str, body: yaml.Node, fail: Any) -> Rule:
    values: dict[str, Any] = {}
    nodes: dict[str, yaml.Node] = {}
    for key, value in pairs(body, fail, f"policy {name!r} must be a mapping of fields"):
        field = key.value
        if field not in _FIELDS:
            raise fail(key, f"policy {name!r}: unknown field {field!r} (known: {', '.join(sorted(_FIELDS))})")
        if field in values:
            raise fail(key, f"policy {name!r}: field {field!r} is given twice")
        values[field] = _scalar(value)
        nodes[field] = value
    for required in ("limit", "period"):
        if required not in values:
            raise fail(body, f"policy {name!r}: {required!r} is required")

    def number(field: str) -> int:
        value = values.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(nodes[field], f"policy {name!r}: {field} must be a whole number (got {value!r})")
        return value

    def choice(field: str, options: Mapping[str, int]) -> int:
        if field not in values:
            return 0
        value = str(values[field]).lower()
        if value not in options:
            raise fail(nodes[field], f"policy {name!r}: {field} must be one of {', '.join(options)}")
        return options[value]

    try:
        period_ms = _whole_ms(parse_duration(str(values["period"]), "period"))
    except ConfigError as exc:
        raise fail(nodes["period"], f"policy {name!r}: {exc}") from None
    try:
        return make_rule(
            "",
            algorithm=choice("algorithm", _ALGORITHMS),
            limit=number("limit"),
            period_ms=period_ms,
            burst=number("burst"),
            on_backend_error=choice("on_backend_error", _FAILURE_MODES),
            name=name,
        )
    except InvalidArgument as exc:
        field = exc.violations[0].field
        raise fail(nodes.get(field, body), f"policy {name!r}: {exc.message}") from None


def _whole_ms(seconds: float) -> int:
    """A period read from the file as whole milliseconds; ConfigError for a finer one (1.5ms), which a
    rule would otherwise use as a different period. The text became a float, so 7ms (7.000000000000001
    ms) counts as whole: the tolerance is far below what a person can write, far above float error."""
    millis = seconds * 1000
    whole = round(millis)
    if not math.isclose(millis, whole, rel_tol=1e-12, abs_tol=1e-9):
        raise ConfigError(f"period: must be a whole number of milliseconds (got {millis:.9g}ms)")
    return whole


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        kind = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
        return f"a {kind}"  # refused by the field's own check
    return yaml.SafeLoader("").construct_object(node)  # type: ignore[no-untyped-call]


class PolicyRegistry:
    """The policies in force. ``reload`` replaces them only with a file that is valid as a whole."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._policies: Mapping[str, Rule] = MappingProxyType({})
        if path:
            self._policies = self._read()

    def get(self, name: str) -> Rule | None:
        return self._policies.get(name)

    def names(self) -> list[str]:
        return sorted(self._policies)

    def reload(self) -> bool:
        """Re-read the file; on any error log it, keep the current policies and return False."""
        if not self.path:
            return True
        try:
            policies = self._read()
        except PolicyError as exc:
            log.error("rate limit policies NOT reloaded, the previous ones stay in force: %s", exc)
            return False
        self._policies = policies
        log.info("rate limit policies reloaded from %s: %d policies", self.path, len(policies))
        return True

    def _read(self) -> Mapping[str, Rule]:
        try:
            text = Path(self.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{self.path}: cannot be read: {exc}") from None
        return parse_policies(text, self.path)
