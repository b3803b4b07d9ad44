"""Reading an operator's YAML file so that every error names the file and the line.

The policy file (ratelimit/policies.py) and the auth file (auth/keys.py) are composed into YAML nodes,
not loaded into plain values, so that a problem found while checking a value can still point at its
line. Both use :func:`compose` and the ``fail`` function it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import yaml

E = TypeVar("E", bound=Exception)
Fail = Callable[[yaml.Node | None, str], E]


def compose(text: str, source: str, error: Callable[[str], E]) -> tuple[yaml.Node | None, Fail[E]]:
    """The root node of ``text`` (None for an empty file) and a ``fail(node, message)`` that builds
    ``error("<source>:<line>: <message>")`` for a node; invalid YAML raises that error at once."""

    def fail(node: yaml.Node | None, message: str) -> E:
        line = node.start_mark.line + 1 if node is not None else 1
        return error(f"{source}:{line}: {message}")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise error(f"{source}:{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {exc}") from None
    return root, fail


def pairs(node: yaml.Node, fail: Fail[E], message: str) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    """The (key, value) nodes of a mapping node; ``fail(node, message)`` when it is not a mapping,
    and a failure naming the key's line when a key is not a plain name."""
    if not isinstance(node, yaml.MappingNode):
        raise fail(node, message)
    found: list[tuple[yaml.ScalarNode, yaml.Node]] = []
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise fail(key, "keys must be plain names")
        found.append((key, value))
    return found


def is_null(node: yaml.Node) -> bool:
    """The node is YAML's null (``~``, ``null`` or nothing after the colon)."""
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
