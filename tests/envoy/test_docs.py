"""docs/envoy.md against the code: the settings, the example configuration and the metrics it names."""

from __future__ import annotations

import re
from pathlib import Path

from coord_server.envoy.loading import parse
from coord_server.envoy.stats import EnvoyStats
from coord_server.metrics import Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = (DOCS / "envoy.md").read_text("utf-8")


def test_every_setting_named_exists_with_the_documented_default() -> None:
    configuration = (DOCS / "configuration.md").read_text("utf-8")
    defaults = dict(re.findall(r"^\| `(COORD_\w+)` \| `[^`]+` \| ([^|]+) \|", configuration, re.M))
    named = set(re.findall(r"COORD_[A-Z0-9_]*[A-Z0-9]", PAGE))
    assert named and named <= set(defaults), named - set(defaults)
    for env, default in re.findall(r"^\| `(COORD_\w+)` \| ([^|]+) \|", PAGE, re.M):
        assert default.strip() == defaults[env].strip(), env


def test_the_yaml_configuration_example_loads() -> None:
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", PAGE, re.S) if b.startswith("domain: ingress\n")]
    assert blocks
    for block in blocks:
        domain, tree, _ = parse(block, "docs/envoy.md")
        assert domain == "ingress" and tree.exact and tree.defaults


def test_the_metrics_named_are_the_ones_exported() -> None:
    metrics = Metrics()
    EnvoyStats(metrics)
    exported = {f.name for f in metrics.registry.families() if f.name.startswith("coord_envoy_")}
    named = set(re.findall(r"`(coord_envoy_\w+?)(?:\{\w+\})?`", PAGE))
    assert named == exported
