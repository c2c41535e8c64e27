""".env.example documents every variable the code and docker-compose.yml read, and
nothing else."""

from __future__ import annotations

import re

from pydantic import AliasChoices

from config.settings import Settings
from tests.deploy.compose import COMPOSE_FILE, ENV_EXAMPLE, REPO, variables_used

PACKAGES = ("activities", "bench", "config", "definitions", "gateway", "monitoring", "services", "store", "workers", "workflows")
NOT_FOR_OPERATORS = {"LIENTHONG_TEST_POSTGRES_URL"}  # the test suite's PostgreSQL (scripts/ensure-postgres.sh)
SET_BY_THE_STACK = {  # container-only: set in docker-compose.yml itself, never by an operator
    "DB", "DB_PORT", "POSTGRES_SEEDS", "POSTGRES_USER", "POSTGRES_PWD", "SQL_PASSWORD", "BIND_ON_IP",
    "PROMETHEUS_ENDPOINT", "DYNAMIC_CONFIG_FILE_PATH", "PROMETHEUS_URL", "TEMPORAL_DEFAULT_NAMESPACE",
    "LIENTHONG_SEARCH_ATTRIBUTES", "GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD",
    "GF_USERS_ALLOW_SIGN_UP", "GF_ANALYTICS_REPORTING_ENABLED",
}


def documented() -> set[str]:
    """`NAME=value` lines, commented out or not."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def settings_alternatives() -> list[set[str]]:
    """Per Settings field, the variable names that set it (any one of them will do)."""
    prefix = Settings.model_config.get("env_prefix", "")
    out = []
    for field_name, field in Settings.model_fields.items():
        if isinstance(field.json_schema_extra, dict) and "environment" in field.json_schema_extra:
            continue  # a family of variables (per agency), documented by test_per_agency_webhook_secrets
        if isinstance(field.validation_alias, AliasChoices):
            out.append({str(choice) for choice in field.validation_alias.choices})
        else:
            out.append({f"{prefix}{field_name}".upper()})
    return out


def settings_variables() -> set[str]:
    return set().union(*settings_alternatives())


def read_by_the_code() -> set[str]:
    names = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            names |= set(re.findall(r"[\"'](LIENTHONG_[A-Z0-9_]*[A-Z0-9])[\"']", path.read_text()))
    return names - NOT_FOR_OPERATORS


def test_every_variable_the_code_reads_is_documented() -> None:
    assert {"LIENTHONG_DATABASE_URL", "LIENTHONG_WEBHOOK_SECRET"} <= read_by_the_code()  # not vacuous
    aliases = [names for names in settings_alternatives() if len(names) > 1]
    direct = read_by_the_code() - set().union(*aliases)
    assert direct - documented() == set()
    for names in settings_alternatives():
        assert names & documented(), f"none of {sorted(names)} is in .env.example"


def test_every_variable_the_compose_file_reads_is_documented() -> None:
    used = variables_used(COMPOSE_FILE.read_text())
    assert "POSTGRES_PASSWORD" in used
    assert used - documented() == set()


def test_per_agency_webhook_secrets_are_documented() -> None:
    assert "LIENTHONG_WEBHOOK_SECRET_<AGENCY_CODE>" in ENV_EXAMPLE.read_text()


def test_nothing_documented_is_unused() -> None:
    used = (settings_variables() | read_by_the_code() | variables_used(COMPOSE_FILE.read_text())
            | {"COMPOSE_PROJECT_NAME"})  # read by docker compose itself
    assert documented() - used == set()


def test_container_only_variables_are_not_operator_settings() -> None:
    """The ones docker-compose.yml sets to fixed values are wiring, not configuration:
    they must not be listed as if an operator could change them."""
    assert documented() & (SET_BY_THE_STACK - {"POSTGRES_USER"}) == set()
