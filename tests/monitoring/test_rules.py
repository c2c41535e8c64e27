"""The Prometheus rules and config under Debian's promtool."""

from __future__ import annotations

import subprocess

from ruamel.yaml import YAML

from tests.monitoring.conftest import PROMETHEUS_CONFIG, RULE_TESTS, RULES


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=RULE_TESTS.parent)


def test_promtool_check_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config(promtool: str) -> None:
    result = run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def alerts() -> list[dict]:  # type: ignore[type-arg]
    doc = YAML(typ="safe").load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_severity_summary_and_runbook() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    for rule in alerts():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["labels"]["service"] == "lienthong", rule["alert"]
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key, "").strip(), (rule["alert"], key)


def test_every_alert_is_unit_tested_before_and_after_it_fires() -> None:
    doc = YAML(typ="safe").load(RULE_TESTS.read_text())
    silent: dict[str, int] = {}
    firing: dict[str, int] = {}
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            target = firing if case["exp_alerts"] else silent
            target[case["alertname"]] = target.get(case["alertname"], 0) + 1
    for rule in alerts():
        assert silent.get(rule["alert"]), f"{rule['alert']}: no evaluation before it fires"
        assert firing.get(rule["alert"]), f"{rule['alert']}: no evaluation where it fires"
