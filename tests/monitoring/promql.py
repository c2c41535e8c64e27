"""Metric names in a PromQL expression (enough of PromQL for our dashboards and rules),
and the queries of the Grafana dashboards and alert rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from ruamel.yaml import YAML

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless",
    "inf", "nan", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio", "atan2",
}
# Grafana's variables, replaced by values a query can run with.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "${__range}": "1h"}


def metric_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name in KEYWORDS:
            continue
        names.add(name)
    return names


def fill(expr: str, sector: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr.replace("${sector}", sector).replace("$sector", sector)


def dashboard_queries(folder: Path) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and template variable of every dashboard."""
    for path in sorted(folder.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", []):
                yield f"{path.name} panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
                found = re.fullmatch(r"label_values\((.+),\s*\w+\)", query.strip())
                assert found, f"{path.name} variable {variable['name']}: unexpected query {query!r}"
                yield f"{path.name} variable {variable['name']}", found.group(1)


def _panels(panels: list[dict]) -> Iterator[dict]:  # type: ignore[type-arg]
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def grafana_alert_queries(path: Path, datasource_uid: str) -> Iterator[tuple[str, str]]:
    doc = YAML(typ="safe").load(path.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            for query in rule["data"]:
                if query["datasourceUid"] == datasource_uid:
                    yield f"grafana alert {rule['uid']} {query['refId']}", query["model"]["expr"]


def prometheus_rule_queries(path: Path) -> Iterator[tuple[str, str]]:
    doc = YAML(typ="safe").load(path.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]
