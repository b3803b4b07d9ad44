"""The Grafana dashboard and the Prometheus alert rules in deploy/ name only metrics Coord exports.

A renamed metric would otherwise leave a panel empty and an alert that never fires, silently.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from coord_server.metrics.families import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_NAME = re.compile(r"\b((?:grpc_server|coord)_[a-z0-9_]+)")
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def _exported() -> set[str]:
    names = set()
    for family in Metrics().registry.families():
        names.add(family.name)
        if family.kind == "histogram":
            names.update(family.name + part for part in _HISTOGRAM_PARTS)
    return names


def _named(expr: str) -> set[str]:
    return set(_NAME.findall(expr))


def test_every_alert_expression_names_exported_metrics_and_says_what_to_do() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "coord-alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in alerts}
    # What the operator is told to watch: Redis down, errors, latency, memory, eviction, consumer lag.
    assert {"CoordRedisDown", "CoordHighErrorRatio", "CoordSlowCalls", "CoordRedisMemoryNearMax",
            "CoordRedisEvicting", "CoordConsumerGroupLag"} <= names  # fmt: skip
    exported = _exported()
    for rule in alerts:
        used = _named(rule["expr"])
        assert used, rule["alert"]
        assert used <= exported, (rule["alert"], used - exported)
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_dashboard_query_names_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "coord-dashboard.json").read_text())
    exported = _exported()
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(queries) >= 10
    for expr in queries:
        used = _named(expr)
        assert used and used <= exported, (expr, used - exported)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
