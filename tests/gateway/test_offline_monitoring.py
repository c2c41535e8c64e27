"""The other thing the product gives browsers: the Grafana dashboards and provisioning
(monitoring/grafana). On an isolated network they must need no plugin from
grafana.com, no image, font or map tile from outside and no outside link.

Out of scope here: the container images in docker-compose.yml and the Dockerfile's
base image, which the operator pulls into the network's own registry before deploying;
and Grafana's own settings (update checks, gravatar), which are docker-compose.yml's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.gateway.stack import REPO
from tests.gateway.test_offline import outside_urls

GRAFANA = REPO / "monitoring" / "grafana"
# Panel types built into Grafana that fetch nothing from outside by themselves. Not
# listed on purpose: `news` (reads an RSS feed from grafana.com by default) and
# `geomap` (loads its base map tiles from an outside tile server by default).
OFFLINE_PANELS = {"row", "stat", "timeseries", "table", "bargauge", "gauge", "barchart", "piechart", "heatmap",
                  "histogram", "state-timeline", "status-history", "text", "logs", "alertlist", "dashlist",
                  "annolist", "xychart", "trend", "candlestick", "nodeGraph", "traces", "flamegraph", "canvas"}
# Data sources: the provisioned Prometheus, and Grafana's built-in pseudo-sources.
OFFLINE_DATASOURCES = {"prometheus", "datasource", "grafana", "__expr__"}


def _walk(value: Any) -> list[Any]:
    """`value` and everything nested in it."""
    if isinstance(value, dict):
        return [value] + [v for item in value.values() for v in _walk(item)]
    if isinstance(value, list):
        return [value] + [v for item in value for v in _walk(item)]
    return [value]


def _dashboards() -> dict[str, Any]:
    paths = (GRAFANA / "dashboards").glob("*.json")
    boards = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in paths}
    assert boards
    return boards


def test_dashboards_name_no_outside_url() -> None:
    for name, board in _dashboards().items():
        texts = [v for v in _walk(board) if isinstance(v, str)]
        assert [t for t in texts if outside_urls(t, "http://grafana.invalid")] == [], name
        assert all(link["url"].startswith("/") for link in board.get("links", [])), name


def test_dashboards_need_only_grafanas_built_in_panels_and_the_provisioned_datasource() -> None:
    for name, board in _dashboards().items():
        # `__requires` (and `__inputs`) come with dashboards exported for grafana.com;
        # a plugin listed there would have to be installed from outside.
        assert "__requires" not in board and "__inputs" not in board, name
        nodes = [v for v in _walk(board) if isinstance(v, dict)]
        panels = {node["type"] for node in nodes if "gridPos" in node}
        assert panels and panels <= OFFLINE_PANELS, (name, panels - OFFLINE_PANELS)
        sources = {node["datasource"]["type"] for node in nodes if isinstance(node.get("datasource"), dict)}
        assert sources and sources <= OFFLINE_DATASOURCES, (name, sources)


def test_grafana_provisioning_names_no_outside_url() -> None:
    # The data source's URL comes from the environment (compose: http://prometheus:9090).
    for path in sorted(Path(GRAFANA / "provisioning").rglob("*.yml")):
        document = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        texts = [v for v in _walk(document) if isinstance(v, str)]
        assert [t for t in texts if outside_urls(t, "http://grafana.invalid")] == [], path
