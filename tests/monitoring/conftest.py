"""Monitoring tests: the store collector on SQLite and PostgreSQL, the worker counters,
the rules under promtool, and a real Prometheus (Debian's `prometheus` package) scraping
a real exporter and worker.

promtool and prometheus must be installed (`make test` installs them with apt-get: scripts/ensure-test-tools.sh); when
they are not, these tests fail with the reason: they are never skipped.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.processes import free_port  # noqa: F401 (imported from here by the monitoring tests)

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
RULES = MONITORING / "prometheus" / "rules" / "lienthong.rules.yml"
RULE_TESTS = MONITORING / "prometheus" / "tests" / "lienthong.rules.test.yml"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
GRAFANA = MONITORING / "grafana"
DEFINITIONS = REPO / "definitions"
LIENTHONG = Path(sys.executable).parent / "lienthong"
INSTALL_HINT = "install Debian's prometheus package (apt-get install -y prometheus; `make test` does it as root)"


def debian_binary(name: str) -> str:
    """/usr/bin/NAME (or NAME on PATH); fails the test with how to install it."""
    for candidate in (f"/usr/bin/{name}", shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"`{name}` not found at /usr/bin/{name} or on PATH: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def promtool() -> str:
    return debian_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return debian_binary("prometheus")


@pytest.fixture
def store(deployed_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """A migrated database (SQLite and PostgreSQL) with the shipped definitions deployed."""
    return deployed_sessions
