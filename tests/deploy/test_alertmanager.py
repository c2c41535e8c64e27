"""deploy/alertmanager/alertmanager.yml, checked by Alertmanager's own amtool (Debian's
prometheus-alertmanager, installed by `make test` as root): valid, and routes the project's alerts
by severity to the receivers the README names."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.deploy.compose import REPO, load_yaml

CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = REPO / "monitoring" / "prometheus" / "rules" / "lienthong.rules.yml"


@pytest.fixture(scope="module")
def amtool() -> str:
    found = shutil.which("amtool")
    if not found:
        pytest.fail("amtool not found: install Debian's prometheus-alertmanager (`make test` does as root)")
    return found


def route(amtool: str, labels: dict[str, str]) -> str:
    result = subprocess.run([amtool, "config", "routes", "test", f"--config.file={CONFIG}",
                             *(f"{key}={value}" for key, value in labels.items())],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_config_is_valid(amtool: str) -> None:
    result = subprocess.run([amtool, "check-config", str(CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_of_the_rules_reaches_a_receiver_by_its_severity(amtool: str) -> None:
    alerts = [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(alerts) >= 10
    expected = {"critical": "platform-oncall", "warning": "monitoring-team"}
    for alert in alerts:
        labels = {"alertname": alert["alert"], **{k: str(v) for k, v in alert["labels"].items()}}
        assert route(amtool, labels) == expected[labels["severity"]], alert["alert"]


def test_inhibitions_name_alerts_that_exist() -> None:
    names = {rule["alert"] for group in load_yaml(RULES)["groups"] for rule in group["rules"] if "alert" in rule}
    text = CONFIG.read_text()
    mentioned = set(re.findall(r"Lienthong[A-Za-z]+", text))
    assert mentioned and mentioned <= names, mentioned - names
