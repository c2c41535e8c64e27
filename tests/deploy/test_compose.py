"""docker-compose.yml, proven without a Docker engine: it validates against the Compose
Specification's schema, has every service the design needs, pinned images, existing
mounts, agreeing addresses, and a start-up order its healthchecks and depends_on enforce."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from sqlalchemy.engine import make_url

from tests.deploy.compose import (
    COMPOSE_FILE,
    REPO,
    InterpolationError,
    env_file,
    load_yaml,
    required_variables,
    resolved,
)
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES

SCHEMA = json.loads((Path(__file__).with_name("compose-spec.json")).read_text())

NEEDED_SERVICES = {
    "postgresql", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui",
    "migrate", "worker", "gateway", "exporter", "prometheus", "alertmanager", "grafana",
}
LIENTHONG_SERVICES = {"migrate", "worker", "gateway", "exporter"}
ONE_SHOT = {"temporal-schema", "temporal-namespace", "migrate"}


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return resolved(env_file())


@pytest.fixture(scope="module")
def services(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return stack["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def command_option(service: dict[str, Any], option: str) -> str | None:
    command = service.get("command") or []
    return command[command.index(option) + 1] if option in command else None


def published(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host port, container port) of each `ports:` entry (`address:host:container`)."""
    out = []
    for entry in service.get("ports") or []:
        *_, host, container = str(entry).split(":")
        out.append((host, int(container)))
    return out


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes") or []:
        source, target, *_ = str(volume).split(":")
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


# ----------------------------------------------------------------------------- the file


def test_validates_against_the_compose_specification(stack: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(stack)


def test_the_schema_check_is_not_vacuous(stack: dict[str, Any]) -> None:
    broken = copy.deepcopy(stack)
    broken["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_finished"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)
    broken = copy.deepcopy(stack)
    broken["services"]["gateway"]["healthcheck"]["intervall"] = "5s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)


def test_every_service_the_design_needs_is_there(services: dict[str, Any]) -> None:
    assert NEEDED_SERVICES <= set(services), NEEDED_SERVICES - set(services)


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service["image"]
        if name in LIENTHONG_SERVICES:
            assert service["build"]["dockerfile"] == "Dockerfile", name
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned"


def test_temporal_server_and_admin_tools_move_together(services: dict[str, Any]) -> None:
    server_tag = services["temporal"]["image"].rpartition(":")[2]
    for job in ("temporal-schema", "temporal-namespace"):
        assert services[job]["image"].rpartition(":")[2] == server_tag, job


def test_secrets_have_no_defaults() -> None:
    """A password or secret missing from .env stops `docker compose up`; none is baked in."""
    text = COMPOSE_FILE.read_text()
    secrets = {name for name in re.findall(r"\$\{([A-Z_]+)", text) if re.search("PASSWORD|SECRET", name)}
    assert secrets, "no secrets found: the check would be vacuous"
    optional = {"GF_SMTP_PASSWORD"}  # Grafana's SMTP is optional; empty means no SMTP
    assert secrets - optional <= required_variables(text), secrets - optional - required_variables(text)
    env = env_file()
    for name in sorted(secrets - optional):
        without = {key: value for key, value in env.items() if key != name}
        with pytest.raises(InterpolationError, match=name):
            resolved(without)


def test_every_mounted_file_and_build_context_exists(services: dict[str, Any]) -> None:
    checked = 0
    for name, service in services.items():
        for source, _target in bind_mounts(service):
            assert (REPO / source).exists(), f"{name}: mount source {source} does not exist"
            checked += 1
        if "build" in service:
            context = REPO / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name
    assert checked >= 10


def test_scripts_run_by_the_stack_are_valid_shell(services: dict[str, Any]) -> None:
    scripts = [REPO / source for service in services.values() for source, _ in bind_mounts(service)
               if source.endswith(".sh")]
    assert len(scripts) == 3
    for script in scripts:
        subprocess.run(["sh", "-n", str(script)], check=True)


# ----------------------------------------------------------------------------- wiring


def test_lienthong_services_reach_temporal_and_the_database(services: dict[str, Any]) -> None:
    temporal_ports = {container for _, container in published(services["temporal"])}
    db = services["postgresql"]
    init_script = next(REPO / source for source, target in bind_mounts(db) if "initdb" in target).read_text()
    for name in LIENTHONG_SERVICES:
        env = environment(services[name])
        host, port = env["TEMPORAL_ADDRESS"].split(":")
        assert host == "temporal" and int(port) in temporal_ports, name
        url = make_url(env["LIENTHONG_DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg" and url.host == "postgresql" and url.port == 5432, name
        assert url.password == env_file()["LIENTHONG_DB_PASSWORD"], name
        assert f"CREATE DATABASE {url.database} OWNER {url.username}" in init_script, name
        definitions = env["LIENTHONG_DEFINITIONS"]
        assert definitions in {target for _, target in bind_mounts(services[name])}, name
    assert environment(services["temporal-namespace"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert environment(services["temporal-ui"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert environment(services["temporal"])["POSTGRES_SEEDS"] == "postgresql"
    assert environment(services["temporal-schema"])["POSTGRES_SEEDS"] == "postgresql"
    assert environment(services["temporal"])["POSTGRES_USER"] == "temporal"
    assert "CREATE ROLE temporal LOGIN CREATEDB" in init_script


def test_the_namespace_job_registers_the_workflows_search_attributes(services: dict[str, Any]) -> None:
    listed = environment(services["temporal-namespace"])["LIENTHONG_SEARCH_ATTRIBUTES"].split()
    declared = dict(item.split("=") for item in listed)
    expected = {key.name: key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_") for key in SEARCH_ATTRIBUTES}
    normalised = {name: kind.upper().replace("KEYWORDLIST", "KEYWORD_LIST") for name, kind in declared.items()}
    assert normalised == expected


def test_prometheus_scrapes_what_the_services_serve(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    mounts = dict((target, source) for source, target in bind_mounts(prometheus))
    config = load_yaml(REPO / mounts["/etc/prometheus/prometheus.yml"])
    assert mounts["/etc/prometheus/rules"] == "./monitoring/prometheus/rules"
    assert all(pattern.startswith("rules/") for pattern in config["rule_files"])  # relative to /etc/prometheus

    serving = {
        ("exporter", int(command_option(services["exporter"], "--port"))),
        ("worker", int(environment(services["worker"])["LIENTHONG_WORKER_METRICS_PORT"])),
        ("worker", int(environment(services["worker"])["LIENTHONG_SDK_METRICS_PORT"])),
        ("temporal", int(environment(services["temporal"])["PROMETHEUS_ENDPOINT"].rsplit(":", 1)[1])),
    }
    scraped = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                scraped.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            scraped |= {(name, int(dns["port"])) for name in dns["names"]}
    assert scraped == serving
    assert {str(port) for host, port in serving if host == "worker"} <= set(services["worker"]["expose"])

    (alertmanager,) = [t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"] for t in s["targets"]]
    host, port = alertmanager.split(":")
    assert host == "alertmanager" and int(port) in {c for _, c in published(services["alertmanager"])}


def test_workers_are_discovered_by_dns_so_they_can_scale(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=3 needs both
    config = load_yaml(REPO / "monitoring/prometheus/prometheus.yml")
    worker_jobs = [job for job in config["scrape_configs"] if job["job_name"].startswith("lienthong-worker")]
    assert worker_jobs and all("dns_sd_configs" in job and "static_configs" not in job for job in worker_jobs)


def test_grafana_is_provisioned_from_the_monitoring_folder(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    mounts = {target: source for source, target in bind_mounts(grafana)}
    for kind in ("datasources", "dashboards", "alerting"):
        assert mounts[f"/etc/grafana/provisioning/{kind}"] == f"./monitoring/grafana/provisioning/{kind}"
    provider = load_yaml(REPO / "monitoring/grafana/provisioning/dashboards/lienthong.yml")["providers"][0]
    assert mounts[provider["options"]["path"]] == "./monitoring/grafana/dashboards"

    datasource = load_yaml(REPO / "monitoring/grafana/provisioning/datasources/lienthong.yml")["datasources"][0]
    assert datasource["url"] == "${PROMETHEUS_URL}"
    url = urlsplit(environment(grafana)["PROMETHEUS_URL"])
    assert url.hostname == "prometheus" and url.port in {c for _, c in published(services["prometheus"])}
    alerting = (REPO / "monitoring/grafana/provisioning/alerting/lienthong.yml").read_text()
    for variable in re.findall(r"\$\{([A-Z_]+)\}", alerting):
        assert variable in environment(grafana), f"Grafana alerting reads ${variable}; the service does not set it"


def test_published_ports_do_not_collide_and_stay_local_by_default(services: dict[str, Any]) -> None:
    hosts = [host for service in services.values() for host, _ in published(service)]
    assert len(hosts) == len(set(hosts)), hosts
    for name, service in services.items():
        for entry in service.get("ports") or []:
            assert str(entry).startswith("127.0.0.1:"), f"{name}: {entry} (PUBLISH_ADDRESS defaults to 127.0.0.1)"


def test_healthchecks_probe_the_port_the_service_listens_on(services: dict[str, Any]) -> None:
    expected = {
        "worker": environment(services["worker"])["LIENTHONG_WORKER_METRICS_PORT"],
        "gateway": command_option(services["gateway"], "--port"),
        "exporter": command_option(services["exporter"], "--port"),
        "prometheus": "9090", "alertmanager": "9093", "grafana": "3000", "temporal": "7233",
    }
    for name, port in expected.items():
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert re.search(rf"(localhost|127\.0\.0\.1)[:/ ]{port}\b", probe), f"{name}: {probe}"


# ----------------------------------------------------------------------------- start-up order


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def test_depends_on_conditions_are_backed_by_healthchecks_and_one_shot_jobs(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, condition in dependencies(service).items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy; it has no healthcheck"
            if condition == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name} waits for {target} to finish; it never does"
    for job in ONE_SHOT:
        assert str(services[job].get("restart", "no")).startswith(("no", "on-failure")), job


def test_start_up_order(services: dict[str, Any]) -> None:
    def before(name: str, seen: frozenset[str] = frozenset()) -> set[tuple[str, str]]:
        assert name not in seen, f"depends_on cycle through {name}"
        out = set()
        for target, condition in dependencies(services[name]).items():
            out.add((target, condition))
            out |= before(target, seen | {name})
        return out

    for name in services:
        before(name)  # no cycles
    for name in ("worker", "gateway"):
        chain = before(name)
        assert {("postgresql", "service_healthy"), ("temporal", "service_healthy"),
                ("migrate", "service_completed_successfully"),
                ("temporal-namespace", "service_completed_successfully"),
                ("temporal-schema", "service_completed_successfully")} <= chain, name
    assert ("migrate", "service_completed_successfully") in before("exporter")
    assert ("prometheus", "service_healthy") in before("grafana")
    assert dependencies(services["migrate"]) == {"postgresql": "service_healthy"}


def test_the_migration_job_upgrades_the_schema_then_deploys_the_definitions(services: dict[str, Any]) -> None:
    script = " ".join(services["migrate"]["command"])
    assert script.index("lienthong db upgrade") < script.index("lienthong definitions deploy")
    assert "&&" in script  # a failed migration deploys nothing, and the job fails


# ----------------------------------------------------------------------------- a real Compose implementation


@pytest.fixture(scope="module")
def docker_compose() -> str:
    """Debian's docker-compose (1.29, the Python implementation; `make test` installs it as root):
    it parses, interpolates and validates a compose file without a Docker engine."""
    import shutil

    found = shutil.which("docker-compose")
    if not found:
        pytest.fail("docker-compose not found: install Debian's docker-compose package (`make test` does as root)")
    return found


def compose_config(binary: str, env_path: Path) -> subprocess.CompletedProcess[str]:
    # Only the env file: a variable of this process (the test suite's codec keys) would win over it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_", "TEMPORAL_"))}
    return subprocess.run([binary, "--project-directory", str(REPO), "--env-file", str(env_path),
                           "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, cwd=REPO, env=env)


def test_docker_compose_accepts_the_file_and_resolves_it_as_these_tests_do(
        docker_compose: str, stack: dict[str, Any]) -> None:
    from ruamel.yaml import YAML

    result = compose_config(docker_compose, REPO / ".env.example")
    assert result.returncode == 0, result.stderr
    theirs = YAML(typ="safe").load(result.stdout)["services"]
    assert set(theirs) == set(stack["services"])
    for name in ("worker", "gateway", "grafana", "temporal"):
        assert environment(theirs[name]) == environment(stack["services"][name]), name


def test_docker_compose_refuses_to_start_without_a_secret(docker_compose: str, tmp_path: Path) -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    without = tmp_path / "env"
    without.write_text("\n".join(line for line in lines if not line.startswith("LIENTHONG_WEBHOOK_SECRET=")))
    result = compose_config(docker_compose, without)
    assert result.returncode != 0 and "LIENTHONG_WEBHOOK_SECRET" in result.stderr


def test_the_worker_syncs_with_the_portal_only_once_its_url_is_set(services: dict[str, Any]) -> None:
    """Off by default (the URL empty); every portal setting reaches the worker and is valid."""
    from activities.portal import PortalConfig
    from config.settings import Settings

    env = environment(services["worker"])
    names = {name for name in Settings.model_fields if name.startswith("portal_")}
    assert {f"LIENTHONG_{name.upper()}" for name in names} <= set(env)
    given = {name: env[f"LIENTHONG_{name.upper()}"] for name in names}
    assert PortalConfig.from_settings(Settings(_env_file=None, **given)) is None  # type: ignore[call-arg]
    configured = Settings(_env_file=None, **{**given, "portal_url": "https://dvc.example.invalid/sync",  # type: ignore[call-arg]
                                              "portal_token": "t"})
    config = PortalConfig.from_settings(configured)
    assert config is not None and (config.url, config.token, config.batch_size) == \
        ("https://dvc.example.invalid/sync", "t", 50)
