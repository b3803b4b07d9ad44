"""envoyproxy/ratelimit's YAML configuration: one domain per file, from a file or a folder of files,
loaded at start and reloaded on SIGHUP.

A file looks like this (docs/envoy.md has the whole format and its differences)::

    domain: edge_proxy_per_ip
    descriptors:
      - key: remote_address
        rate_limit:
          unit: second              # second, minute, hour, day, week, month, year
          requests_per_unit: 10
          algorithm: gcra           # Coord's extension: fixed_window (default) | gcra | sliding_window
      - key: remote_address
        value: 50.0.0.5
        rate_limit:
          unit: second
          requests_per_unit: 0      # blocked

Every problem is refused with the file and line it is on, and the whole configuration (every file)
is refused with it: a reload keeps the previous configuration in force.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType

import yaml

from .._yaml import Fail, compose, is_null
from ..config import ConfigError
from .model import UNIT_SECONDS, Algorithm, Config, Node, Rule, Unit, Wildcard

log = logging.getLogger(__name__)

_ROOT_FIELDS = ("domain", "descriptors")
_DESCRIPTOR_FIELDS = (
    "key", "value", "rate_limit", "descriptors", "shadow_mode", "quota_mode", "detailed_metric",
    "value_to_metric", "share_threshold", "metadata",
)  # fmt: skip
_RATE_LIMIT_FIELDS = ("unit", "requests_per_unit", "unlimited", "name", "replaces", "algorithm")
_ALGORITHMS = {
    "fixed_window": Algorithm.FIXED_WINDOW,
    "gcra": Algorithm.GCRA,
    "token_bucket": Algorithm.GCRA,
    "sliding_window": Algorithm.SLIDING_WINDOW,
}
_UNITS = {unit.name.lower(): unit for unit in Unit}
_MAX_REQUESTS = 2**32 - 1  # requests_per_unit is a uint32 in the API
_STR, _BOOL, _INT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int"
_SUFFIXES = (".yaml", ".yml")


class EnvoyConfigError(ConfigError):
    """The configuration cannot be used; the message names the file and line."""


def _fields(
    node: yaml.Node, fail: Fail[EnvoyConfigError], what: str, known: tuple[str, ...]
) -> dict[str, yaml.Node]:
    """The fields of a mapping node by name; unknown, repeated and non-string keys are refused."""
    if not isinstance(node, yaml.MappingNode):
        raise fail(node, f"{what} must be a mapping")
    found: dict[str, yaml.Node] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag != _STR:
            shown = key.value if isinstance(key, yaml.ScalarNode) else "a collection"
            raise fail(key, f"config error, key is not of type string: {shown}")
        if key.value not in known:
            raise fail(key, f"config error, unknown key {key.value!r} in {what} (known: {', '.join(known)})")
        if key.value in found:
            raise fail(key, f"{key.value!r} is given twice in {what}")
        found[key.value] = value
    return found


def _text(node: yaml.Node | None, fail: Fail[EnvoyConfigError], what: str) -> str:
    """A scalar as the text written (``value: 123`` is "123", as the reference reads it); null is ""."""
    if node is None or is_null(node):
        return ""
    if not isinstance(node, yaml.ScalarNode):
        raise fail(node, f"{what} must be a string")
    return str(node.value)


def _flag(node: yaml.Node | None, fail: Fail[EnvoyConfigError], what: str) -> bool:
    if node is None or is_null(node):
        return False
    if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
        raise fail(node, f"{what} must be true or false")
    return bool(yaml.SafeLoader("").construct_object(node))  # type: ignore[no-untyped-call]


def _whole(node: yaml.Node, fail: Fail[EnvoyConfigError], what: str) -> int:
    if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
        raise fail(node, f"{what} must be a whole number")
    number = yaml.SafeLoader("").construct_object(node)  # type: ignore[no-untyped-call]
    if not isinstance(number, int) or not 0 <= number <= _MAX_REQUESTS:
        raise fail(node, f"{what} must be 0 to {_MAX_REQUESTS} (got {node.value})")
    return number


def _items(node: yaml.Node | None, fail: Fail[EnvoyConfigError], what: str) -> list[yaml.Node]:
    """The elements of a list of mappings (null or absent: none)."""
    if node is None or is_null(node):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise fail(node, f"{what} must be a list")
    for item in node.value:
        if not isinstance(item, yaml.MappingNode):
            shown = item.value if isinstance(item, yaml.ScalarNode) else "a list"
            raise fail(item, f"config error, yaml file contains list of type other than map: {shown}")
    return list(node.value)


class _Reader:
    """Reads one file's domain into a tree, failing with the file and line."""

    def __init__(self, source: str, fail: Fail[EnvoyConfigError]) -> None:
        self.source = source
        self.fail = fail

    def domain(self, root: yaml.Node | None) -> tuple[str, Node, yaml.Node | None]:
        if root is None:
            raise self.fail(None, "config file cannot have empty domain")
        fields = _fields(root, self.fail, "the file", _ROOT_FIELDS)
        name = _text(fields.get("domain"), self.fail, "domain")
        if not name:
            raise self.fail(fields.get("domain", root), "config file cannot have empty domain")
        tree = Node()
        self.descriptors(tree, name, fields.get("descriptors"))
        return name, tree, fields.get("domain")

    def descriptors(self, parent: Node, path: str, node: yaml.Node | None) -> None:
        for item in _items(node, self.fail, "descriptors"):
            self.descriptor(parent, path, item)

    def descriptor(self, parent: Node, path: str, item: yaml.Node) -> None:
        fail = self.fail
        fields = _fields(item, fail, "a descriptor", _DESCRIPTOR_FIELDS)
        key = _text(fields.get("key"), fail, "key")
        if not key:
            raise fail(fields.get("key", item), "descriptor has empty key")
        value = _text(fields.get("value"), fail, "value")
        composite = f"{key}_{value}" if value else key
        full = f"{path}.{composite}"
        share = _flag(fields.get("share_threshold"), fail, "share_threshold")
        if share and "*" not in value:
            raise fail(
                fields["share_threshold"],
                f"share_threshold can only be used with wildcard values (containing '*'), but found key "
                f"{composite!r}",
            )
        node = Node(
            value_to_metric=_flag(fields.get("value_to_metric"), fail, "value_to_metric"),
            share_threshold=share,
        )
        shadow = _flag(fields.get("shadow_mode"), fail, "shadow_mode")
        quota = _flag(fields.get("quota_mode"), fail, "quota_mode")
        detailed = _flag(fields.get("detailed_metric"), fail, "detailed_metric")
        stat_key = full.split(".", 1)[1]  # the statistics' name after the domain
        limit = fields.get("rate_limit")
        if limit is not None and not is_null(limit):
            node.rule = self.rule(limit, stat_key, shadow, quota, detailed)
        taken = (
            any(w.key == key and w.pattern == value for w in parent.wildcards)
            if "*" in value
            else (key, value) in parent.exact
            if value
            else key in parent.defaults
        )
        if taken:
            raise fail(item, f"duplicate descriptor composite key {full!r}")
        # "metadata" is accepted and not used (see docs/envoy.md).
        self.descriptors(node, full, fields.get("descriptors"))
        if "*" in value:
            parent.wildcards.append(Wildcard(key, value, node))
        elif value:
            parent.exact[(key, value)] = node
        else:
            parent.defaults[key] = node

    def rule(self, block: yaml.Node, stat_key: str, shadow: bool, quota: bool, detailed: bool) -> Rule:
        fail = self.fail
        fields = _fields(block, fail, "rate_limit", _RATE_LIMIT_FIELDS)
        name = _text(fields.get("name"), fail, "name")
        replaces: set[str] = set()
        for entry in _items(fields.get("replaces"), fail, "replaces"):
            replaced = _text(_fields(entry, fail, "a replaces entry", ("name",)).get("name"), fail, "name")
            if not replaced:
                raise fail(entry, "should not have an empty replaces entry")
            if replaced == name:
                raise fail(entry, "replaces should not contain name of same descriptor")
            replaces.add(replaced)
        unlimited = _flag(fields.get("unlimited"), fail, "unlimited")
        unit_node = fields.get("unit")
        unit_text = _text(unit_node, fail, "unit").lower()
        if unlimited:
            if unit_text in _UNITS:
                raise fail(unit_node, "should not specify rate limit unit when unlimited")
            return Rule(0, None, name, True, frozenset(replaces), shadow, quota, detailed, stat_key=stat_key)
        if unit_text not in _UNITS:
            raise fail(
                unit_node or block,
                f"invalid rate limit unit {unit_text!r} (known: {', '.join(_UNITS)})",
            )
        unit = _UNITS[unit_text]
        if "requests_per_unit" not in fields:
            raise fail(block, "requests_per_unit is required (0 blocks every request)")
        requests = _whole(fields["requests_per_unit"], fail, "requests_per_unit")
        algorithm = Algorithm.FIXED_WINDOW
        if "algorithm" in fields:
            chosen = _text(fields["algorithm"], fail, "algorithm").lower()
            if chosen not in _ALGORITHMS:
                raise fail(fields["algorithm"], f"algorithm must be one of {', '.join(_ALGORITHMS)}")
            algorithm = _ALGORITHMS[chosen]
        if requests == 0:
            algorithm = Algorithm.FIXED_WINDOW  # a block list: the same under every algorithm
        elif algorithm is Algorithm.GCRA and requests > UNIT_SECONDS[unit] * 1_000_000:
            raise fail(
                fields["requests_per_unit"],
                f"gcra allows at most one request per microsecond ({requests} per {unit_text}); use "
                "fixed_window or a longer unit",
            )
        return Rule(
            requests, unit, name, False, frozenset(replaces), shadow, quota, detailed, algorithm, stat_key
        )


def parse(text: str, source: str) -> tuple[str, Node, int]:
    """One file's ``(domain, tree, line of its domain)``; ``source`` names it in errors."""
    root, fail = compose(text, source, EnvoyConfigError)
    name, tree, domain_node = _Reader(source, fail).domain(root)
    return name, tree, domain_node.start_mark.line + 1 if domain_node is not None else 1


def files_of(path: Path) -> list[Path]:
    """The files a config path names: itself, or a folder's ``*.yaml`` and ``*.yml`` files (not its
    subfolders, nor hidden files such as a Kubernetes ConfigMap's ``..data``), in name order."""
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.suffix in _SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
    return [path]


def load(path: str) -> Config:
    """Every domain of ``path``; EnvoyConfigError names the file (and line) of the first problem."""
    where = Path(path)
    if not where.exists():
        raise EnvoyConfigError(f"{path}: cannot be read: no such file or folder")
    domains: dict[str, Node] = {}
    origin: dict[str, str] = {}
    sources = []
    for file in files_of(where):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EnvoyConfigError(f"{file}: cannot be read: {exc}") from None
        name, tree, line = parse(text, str(file))
        if name in domains:
            raise EnvoyConfigError(f"{file}:{line}: duplicate domain {name!r} (also in {origin[name]})")
        domains[name], origin[name] = tree, f"{file}:{line}"
        sources.append(str(file))
    return Config(MappingProxyType(domains), tuple(sources))


EMPTY = Config(MappingProxyType({}))


class EnvoyLimits:
    """The configuration in force. ``reload`` replaces it only with one that is valid as a whole; a
    request reads ``config`` once, so a reload never changes the rules under a request in flight."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.config = load(path) if path else EMPTY
        # Told of every load after the first (True: loaded, False: refused): the metrics, when on.
        self.on_load: Callable[[bool], None] | None = None

    def domains(self) -> Iterator[str]:
        return iter(sorted(self.config.domains))

    def reload(self) -> bool:
        """Re-read the path; on any problem log it, keep the current configuration, return False."""
        if not self.path:
            return True
        try:
            config = load(self.path)
        except EnvoyConfigError as exc:
            log.error("Envoy rate limit config NOT reloaded, the previous one stays in force: %s", exc)
            if self.on_load is not None:
                self.on_load(False)
            return False
        self.config = config
        log.info(
            "Envoy rate limit config reloaded from %s: %d domains (%s)",
            self.path,
            len(config.domains),
            ", ".join(sorted(config.domains)) or "none",
        )
        if self.on_load is not None:
            self.on_load(True)
        return True
