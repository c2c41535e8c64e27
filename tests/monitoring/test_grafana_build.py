"""The committed Grafana dashboards and alerting provisioning are what monitoring/grafana_build.py
builds with grafana-foundation-sdk, byte for byte: edit the generator, regenerate, commit both."""

from __future__ import annotations

import ast
import json
from importlib.metadata import version
from pathlib import Path

from monitoring import grafana_build
from tests.monitoring.conftest import GRAFANA, MONITORING, REPO

REGENERATE = "python -m monitoring.grafana_build"


def test_committed_files_are_what_the_generator_builds() -> None:
    files = grafana_build.render()
    built = {p.name for p in files if p.parent.name == "dashboards"}
    committed_boards = {p.name for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed_boards == built, f"a dashboard the generator does not build (or not committed): {REGENERATE}"
    for relative, text in files.items():
        committed = (GRAFANA / relative).read_text(encoding="utf-8")
        assert committed == text, (
            f"monitoring/grafana/{relative} is not what monitoring/grafana_build.py builds with "
            f"grafana-foundation-sdk {version('grafana-foundation-sdk')} (pinned in pyproject.toml): "
            f"run `{REGENERATE}` and commit the result (edit the generator, not the file)")


def test_the_installed_sdk_is_the_pinned_one() -> None:
    # The committed bytes depend on the SDK's defaults: another build gives another file.
    pin = next(line for line in (REPO / "pyproject.toml").read_text().splitlines() if "grafana-foundation-sdk" in line)
    assert f"=={version('grafana-foundation-sdk')}\"" in pin, (pin, "pip install -e . installs the pinned SDK")


def test_check_mode_reports_stale_files_and_writes_nothing(tmp_path: Path) -> None:
    assert grafana_build.main(["--check", "--output", str(tmp_path)]) == 1
    assert not any(tmp_path.iterdir())
    assert grafana_build.main(["--output", str(tmp_path)]) == 0
    assert grafana_build.main(["--check", "--output", str(tmp_path)]) == 0
    stale = tmp_path / "dashboards" / "lienthong-sector.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("lienthong — sector", "edited"), encoding="utf-8")
    assert grafana_build.main(["--check", "--output", str(tmp_path)]) == 1
    assert "edited" in stale.read_text(encoding="utf-8")


def test_the_generator_imports_only_third_party_and_monitoring_modules() -> None:
    tree = ast.parse((MONITORING / "grafana_build.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    ours = {"workers", "tests", "gateway", "store", "workflows", "activities", "definitions"}
    assert not {name for name in imported if name.split(".")[0] in ours}, imported


def test_alert_rules_are_the_sdk_rules_in_the_provisioning_file_format() -> None:
    doc = grafana_build.alerting_file()
    rules = {r["uid"]: r for g in doc["groups"] for r in g["rules"]}
    assert set(rules) == {"lienthong-dossiers-overdue", "lienthong-step-overdue-agency", "lienthong-on-time-rate",
                          "lienthong-exporter-down"}
    for rule in rules.values():
        assert [q["refId"] for q in rule["data"]] == ["A", "B", "C"] and rule["condition"] == "C"
        assert "folderUID" not in rule and "orgID" not in rule and "ruleGroup" not in rule  # API fields, not the file's
        reduce, threshold = rule["data"][1]["model"], rule["data"][2]["model"]
        assert (reduce["type"], reduce["expression"], reduce["reducer"]) == ("reduce", "A", "last")
        assert threshold["type"] == "threshold" and threshold["expression"] == "B"
    assert rules["lienthong-exporter-down"]["noDataState"] == "Alerting"
    assert rules["lienthong-on-time-rate"]["data"][2]["model"]["conditions"][0]["evaluator"] == {
        "params": [0.99], "type": "lt"}
    assert {g["interval"] for g in doc["groups"]} == {"1m"}


def test_dashboards_keep_their_uids_links_and_variable() -> None:
    overview, sector = (json.loads((GRAFANA / "dashboards" / f"{uid}.json").read_text())
                        for uid in ("lienthong-overview", "lienthong-sector"))
    assert (overview["uid"], sector["uid"]) == ("lienthong-overview", "lienthong-sector")
    assert overview["links"][0]["url"] == "/d/lienthong-sector/lienthong-sector"
    assert sector["links"][0]["url"] == "/d/lienthong-overview/lienthong-overview"
    variable = sector["templating"]["list"][0]
    assert variable["query"] == {"query": "label_values(lienthong_dossiers_open, sector)", "refId": "sector"}
    assert (variable["refresh"], variable["sort"], variable["multi"], variable["includeAll"]) == (2, 1, False, False)
    for board in (overview, sector):
        assert board["editable"] is False and board["timezone"] == "Asia/Ho_Chi_Minh" and board["graphTooltip"] == 1
