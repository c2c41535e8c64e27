"""Grafana provisioning and dashboards, checked without a Grafana: their structure, and
every query's metric names (the queries themselves run against a real Prometheus in
test_prometheus_integration.py)."""

from __future__ import annotations

import json
import re

from ruamel.yaml import YAML

from tests.monitoring.conftest import GRAFANA
from tests.monitoring.promql import dashboard_queries, grafana_alert_queries, metric_names

DATASOURCE_UID = "lienthong-prometheus"
PROVISIONING = GRAFANA / "provisioning"


def load(path):  # type: ignore[no-untyped-def]
    return YAML(typ="safe").load(path.read_text())


def test_the_datasource_the_dashboards_use_is_provisioned() -> None:
    sources = load(PROVISIONING / "datasources" / "lienthong.yml")["datasources"]
    assert [s["uid"] for s in sources] == [DATASOURCE_UID] and sources[0]["type"] == "prometheus"
    providers = load(PROVISIONING / "dashboards" / "lienthong.yml")["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"]


def test_dashboards_are_well_formed() -> None:
    boards = {path.name: json.loads(path.read_text()) for path in (GRAFANA / "dashboards").glob("*.json")}
    assert set(boards) == {"lienthong-overview.json", "lienthong-sector.json"}
    assert len({b["uid"] for b in boards.values()}) == 2
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == DATASOURCE_UID, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID and target["expr"].strip()
    sector = boards["lienthong-sector.json"]
    assert [v["name"] for v in sector["templating"]["list"]] == ["sector"]
    titles = " ".join(p["title"] for b in boards.values() for p in b["panels"]).lower()
    for needed in ("overdue dossiers by sector", "steps overdue by agency", "99% target",
                   "received and finished per day", "oldest overdue", "procedure", "agencies"):
        assert needed in titles, needed


def test_legends_name_labels_and_time_series_show_them() -> None:
    # "{{{{procedure}}}}" (an f-string's escaped braces) renders no procedure in Grafana.
    for path in (GRAFANA / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                legend = target.get("legendFormat", "")
                assert "{{{" not in legend and "}}}" not in legend, (path.name, panel["title"], legend)
                assert re.sub(r"\{\{\s*\w+\s*\}\}", "", legend).count("{") == 0, (path.name, panel["title"], legend)
            if panel["type"] == "timeseries":
                assert panel["options"]["legend"]["showLegend"] is True, (path.name, panel["title"])


def test_every_query_names_metrics_and_no_dossier_label() -> None:
    queries = list(dashboard_queries(GRAFANA / "dashboards"))
    queries += list(grafana_alert_queries(PROVISIONING / "alerting" / "lienthong.yml", DATASOURCE_UID))
    assert len(queries) > 40
    for where, expr in queries:
        assert metric_names(expr), where
        assert "dossier_id" not in expr and "instance=" not in expr, where


def test_grafana_alert_rules_route_on_service_severity_and_sector() -> None:
    doc = load(PROVISIONING / "alerting" / "lienthong.yml")
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert {r["uid"] for r in rules} >= {"lienthong-dossiers-overdue", "lienthong-step-overdue-agency"}
    for rule in rules:
        assert rule["labels"]["service"] == "lienthong" and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["labels"]["team"] and rule["annotations"]["summary"] and rule["annotations"]["runbook"]
        assert rule["condition"] in {q["refId"] for q in rule["data"]}
        assert rule["data"][0]["datasourceUid"] == DATASOURCE_UID
    overdue = next(r for r in rules if r["uid"] == "lienthong-dossiers-overdue")
    assert "by (sector)" in overdue["data"][0]["model"]["expr"] and overdue["for"] == "10m"
    policy = doc["policies"][0]["routes"][0]
    assert ["service", "=", "lienthong"] in policy["object_matchers"] and "sector" in policy["group_by"]
    assert doc["contactPoints"][0]["name"] == doc["policies"][0]["receiver"]


def test_metric_names_are_found_in_promql() -> None:
    expr = ('sum by (procedure) (increase(lienthong_dossiers_finished_total{sector="G13",verdict=~"early|on_time"}[30d]))'
            ' / on (x) group_left sector:lienthong_dossiers_on_time:ratio_30d offset 1h > 0.99'
            ' or histogram_quantile(0.9, sum by (le) (rate(x_bucket[1m]))) and absent(up{job="a"})')
    assert metric_names(expr) == {"lienthong_dossiers_finished_total", "sector:lienthong_dossiers_on_time:ratio_30d",
                                  "x_bucket", "up"}


def test_the_overview_shows_biểu_06_by_level_and_sector_beside_the_overdue_gauges() -> None:
    """The view a province director reads: on-time rate over the dashboard's range (worker
    counters of resolved dossiers, by level and sector), next to the overdue gauges now."""
    board = json.loads((GRAFANA / "dashboards" / "lienthong-overview.json").read_text())
    panels = {p["title"]: p for p in board["panels"]}
    assert board["panels"][[p["title"] for p in board["panels"]].index(
        "Biểu 06: on time by level and sector over the chosen range, overdue now") + 1]["title"] \
        == "On-time rate by level over the range"
    for title, by in (("On-time rate by level over the range", "level"),
                      ("On-time rate by sector over the range", "sector")):
        expr = panels[title]["targets"][0]["expr"]
        assert expr == (f'sum by ({by}) (increase(lienthong_dossiers_resolved_total{{verdict=~"early|on_time"}}'
                        f"[$__range])) / (sum by ({by}) (increase(lienthong_dossiers_resolved_total[$__range])) > 0)")
        assert panels[title]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert panels["Overdue now by level"]["targets"][0]["expr"] == \
        "sort_desc(sum by (level) (lienthong_dossiers_overdue))"
    table = panels["Biểu 06 by level and sector: resolved over the range, in progress now"]
    assert all("sum by (level, sector)" in t["expr"] for t in table["targets"])
    assert [t["expr"].count("$__range") for t in table["targets"]] == [1, 1, 1, 1, 2, 0, 0]
    assert table["fieldConfig"]["overrides"][0]["matcher"] == {"id": "byName", "options": "on-time rate"}
