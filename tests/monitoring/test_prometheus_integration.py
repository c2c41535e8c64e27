"""A real Prometheus (Debian's binary) on loopback scrapes a real exporter, a real worker
and its Temporal SDK metrics every second, while dossiers run on a Temporal dev server
in wall-clock time; the rules are a test copy of monitoring/prometheus/rules whose
`for:` durations are a few seconds.

The sector's overdue alert must go from not firing (dossier open, due not passed) to
firing (due passed) through Prometheus's HTTP API; then every dashboard panel, Grafana
alert and rule query runs against this Prometheus, and every metric name it uses must
be one this stack actually produced.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import metrics
from monitoring.exporter import MetricsServer, build_registry, serve
from services.binaries import temporal_cli
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from tests.conftest import deploy_shipped
from tests.monitoring.conftest import GRAFANA, RULES, free_port
from tests.monitoring.promql import (
    dashboard_queries,
    fill,
    grafana_alert_queries,
    metric_names,
    prometheus_rule_queries,
)
from tests.support.codec import TEST_CONVERTER
from tests.workflows.harness import (
    assigned,
    complete,
    resubmit,
    running_worker,
    snapshot,
    start_dossier,
    state,
    until,
)
from workers.commands_monitoring import sdk_runtime
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES


# Failures the Temporal SDK counts, produced on a task queue of their own (the stuck
# alerts' metric names must exist): a workflow task that fails, an activity and a local
# activity that fail their single attempt.
@activity.defn(name="always_fails")
async def always_fails() -> None:
    raise RuntimeError("probe: this activity always fails")


@workflow.defn(name="ProbeTaskFails", sandboxed=False)
class ProbeTaskFails:
    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("probe: this workflow task always fails")


@workflow.defn(name="ProbeActivitiesFail", sandboxed=False)
class ProbeActivitiesFail:
    @workflow.run
    async def run(self) -> None:
        once = RetryPolicy(maximum_attempts=1)
        for call in (workflow.execute_activity, workflow.execute_local_activity):
            try:
                await call(always_fails, start_to_close_timeout=timedelta(seconds=5), retry_policy=once)
            except ActivityError:
                pass  # counted by the SDK; go on to the next


SECTOR = "G13-TN01"
DESK = "bpmc-xa-xa-tan-lap"
TEST_FOR = "2s"  # every alert's `for:` in the test copy of the rules
WAIT = 90.0  # seconds: bound on every wait for Prometheus

# The late dossier: on the `continuous` calendar (wall-clock), due 20 s after receipt;
# its first step is due after 10 s and escalates.
LATE = snapshot(code="T.000002", deadline="20s", steps=[
    {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "10s", "escalate_to": "so-nnmt"},
    {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "10s"},
])


@dataclass
class Stack:
    prometheus: str  # base URL
    client: Client
    task_queue: str
    sessions: sessionmaker[Session]
    folder: Path
    late_id: str
    before: dict[str, Any]  # what Prometheus said while the late dossier was not due yet

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.prometheus}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]


def test_copy_of_rules(folder: Path) -> Path:
    """The shipped rules with every `for:` at TEST_FOR and every group on the global
    (1 s) evaluation interval."""
    yaml = YAML(typ="safe")
    doc = yaml.load(RULES.read_text())
    for group in doc["groups"]:
        group.pop("interval", None)
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = TEST_FOR
    path = folder / "rules.yml"
    with path.open("w") as out:
        yaml.dump(doc, out)
    return path


test_copy_of_rules.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def start_prometheus(binary: str, folder: Path, targets: dict[str, int]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(test_copy_of_rules(folder))],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{p}"]}]}
                           for job, p in targets.items()],
    }
    (folder / "prometheus.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}:\n{(folder / 'prometheus.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(process)
    pytest.fail(f"prometheus did not get ready on {url}:\n{(folder / 'prometheus.log').read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def wait_for(what: str, check: Any, stack_log: Path, timeout: float = WAIT) -> Any:
    """Poll `check()` (in a thread) until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.5)
    log = stack_log.read_text(errors="replace")[-2000:] if stack_log.exists() else ""
    pytest.fail(f"{what}: not within {timeout:.0f}s (last: {last!r})\nprometheus log:\n{log}")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, prometheus_bin: str) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("monitoring-stack")
    url = f"sqlite:///{folder / 'lienthong.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    deploy_shipped(sessions)
    # As a worker does at start for every deployed procedure (the two test procedures are
    # not deployed): their series exist at 0 before the first dossier finishes.
    metrics.initialize_from_store(sessions)
    metrics.initialize([(SECTOR, "xa", code) for code in ("T.000002", "T.000003")])

    sdk_port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), search_attributes=SEARCH_ATTRIBUTES,
        data_converter=TEST_CONVERTER, runtime=sdk_runtime(f"127.0.0.1:{sdk_port}"),
        dev_server_log_level="error")
    servers: list[MetricsServer] = []
    process = None
    try:
        exporter = serve(build_registry(sessions), "127.0.0.1", 0)
        servers.append(exporter)
        worker_metrics = serve(metrics.REGISTRY, "127.0.0.1", 0)
        servers.append(worker_metrics)
        process, prometheus = start_prometheus(prometheus_bin, folder, {
            "lienthong-exporter": exporter.port, "lienthong-worker": worker_metrics.port,
            "lienthong-worker-sdk": sdk_port})
        probes = f"probe-{uuid.uuid4()}"
        async with running_worker(env.client, sessions) as task_queue, \
                Worker(env.client, task_queue=probes, workflows=[ProbeTaskFails, ProbeActivitiesFail],
                       activities=[always_fails]):
            failing = await env.client.start_workflow(ProbeTaskFails.run, id=f"probe-{uuid.uuid4()}",
                                                      task_queue=probes)
            await env.client.start_workflow(ProbeActivitiesFail.run, id=f"probe-{uuid.uuid4()}",
                                            task_queue=probes)  # its end does not matter, its failures do
            stack = Stack(prometheus, env.client, task_queue, sessions, folder, "", {})
            try:
                await drive(stack)
                yield stack
            finally:
                await failing.terminate(reason="probe done")
    finally:
        if process is not None:
            stop(process)
        for server in servers:
            server.stop()
        await env.shutdown()
        engine.dispose()


async def drive(stack: Stack) -> None:
    """Start the late dossier and, while it is not due, record what Prometheus says;
    meanwhile finish one dossier early after a supplement request (counters, on-time rate)."""
    client, queue = stack.client, stack.task_queue
    late = await start_dossier(client, queue, LATE)
    stack.late_id = late.id
    await until(late, assigned("tiep-nhan"), "late dossier routed")

    def open_seen() -> list[dict[str, Any]]:
        return stack.query(f'sum(lienthong_dossiers_open{{sector="{SECTOR}",status="processing"}}) >= 1')

    await wait_for("Prometheus scrapes the open dossier", open_seen, stack.folder / "prometheus.log")
    stack.before = {
        "overdue": stack.query(f'sum(lienthong_dossiers_overdue{{sector="{SECTOR}"}})'),
        "alerts": stack.alerts("LienthongDossiersOverdue"),
        "due_at": (await state(late)).due_at,
        "at": datetime.now(UTC),
    }

    early = await start_dossier(client, queue, snapshot(code="T.000003", deadline="1d"))
    await until(early, assigned("tiep-nhan"), "routed")
    await complete(early, "tiep-nhan", DESK, outcome="supplement", note="Thiếu bản sao")
    await resubmit(early, note="Đã bổ sung")
    await until(early, assigned("tiep-nhan"), "resumed")
    await complete(early, "tiep-nhan", DESK)
    await until(early, assigned("tham-dinh"), "routed")
    await complete(early, "tham-dinh", "vpdk-tinh")
    await until(early, assigned("tra-ket-qua"), "routed")
    await complete(early, "tra-ket-qua", DESK)
    await until(early, lambda s: s.status == "completed", "completed")


async def test_targets_are_up_under_the_job_names_the_rules_use(stack: Stack) -> None:
    def all_up() -> dict[str, float]:
        values = {r["metric"]["job"]: float(r["value"][1]) for r in stack.query('up{job=~"lienthong-.*"}')}
        return values if values == {"lienthong-exporter": 1, "lienthong-worker": 1, "lienthong-worker-sdk": 1} else {}

    await wait_for("every target up", all_up, stack.folder / "prometheus.log")
    assert stack.query("lienthong_exporter_store_up")[0]["value"][1] == "1"


async def test_the_sectors_overdue_alert_fires_once_the_due_passes(stack: Stack) -> None:
    # Before the due: open, not overdue, the alert not firing.
    assert stack.before["at"] < stack.before["due_at"], stack.before
    assert [r["value"][1] for r in stack.before["overdue"]] == ["0"], stack.before
    assert not [a for a in stack.before["alerts"] if a["state"] == "firing"], stack.before["alerts"]

    def firing() -> list[dict[str, Any]]:
        return [a for a in stack.alerts("LienthongDossiersOverdue")
                if a["state"] == "firing" and a["labels"].get("sector") == SECTOR]

    alert = (await wait_for(f"LienthongDossiersOverdue firing for {SECTOR}", firing,
                            stack.folder / "prometheus.log"))[0]
    assert alert["labels"]["severity"] == "warning" and alert["labels"]["service"] == "lienthong"
    assert alert["annotations"]["summary"] == f"1 overdue dossier(s) in sector {SECTOR}"
    assert alert["annotations"]["runbook"]

    # The late step fired its own alert, at the agency holding it.
    def step_firing() -> list[dict[str, Any]]:
        return [a for a in stack.alerts("LienthongStepOverdueAtAgency")
                if a["state"] == "firing" and a["labels"].get("agency") == DESK]

    await wait_for(f"LienthongStepOverdueAtAgency firing for {DESK}", step_firing, stack.folder / "prometheus.log")
    # Nothing is down.
    for name in ("LienthongExporterDown", "LienthongNoWorkers", "LienthongWorkerDown", "LienthongStoreUnreadable"):
        assert not stack.alerts(name), (name, stack.alerts(name))


async def test_every_dashboard_alert_and_rule_query_runs_on_produced_metrics(stack: Stack) -> None:
    queries = list(dashboard_queries(GRAFANA / "dashboards"))
    queries += list(grafana_alert_queries(GRAFANA / "provisioning" / "alerting" / "lienthong.yml",
                                          "lienthong-prometheus"))
    queries += list(prometheus_rule_queries(RULES))
    needed = set().union(*(metric_names(expr) for _, expr in queries))

    def produced() -> set[str]:
        names = set(stack.api("label/__name__/values"))
        return needed - names  # empty once every name has samples

    # The late dossier's escalation and the finished dossier's counters take a few scrapes.
    deadline = time.monotonic() + WAIT
    while (missing := await asyncio.to_thread(produced)) and time.monotonic() < deadline:
        await asyncio.sleep(1)
    assert not missing, f"metric names used by dashboards/alerts/rules that nothing produced: {sorted(missing)}"

    for where, expr in queries:
        result = await asyncio.to_thread(stack.query, fill(expr, SECTOR))  # asserts status success
        assert isinstance(result, list), where

    # A few values the scenario fixes: the early dossier counts as on time (30 days), the
    # late one as a deadline miss with an escalation, the supplement request is counted.
    # (The ratio is three recording rules deep: under load its first evaluations after the
    # finish can still see no finished dossier, NaN; wait for it, bounded.)
    def on_time() -> list[dict[str, Any]]:
        found = stack.query(f'sector:lienthong_dossiers_on_time:ratio_30d{{sector="{SECTOR}"}} == 1')
        return found

    await wait_for("the on-time rate of the early dossier", on_time, stack.folder / "prometheus.log")
    escalated = stack.query(f'sum(lienthong_escalations_total{{sector="{SECTOR}",agency="{DESK}",escalate_to="so-nnmt"}})')
    assert float(escalated[0]["value"][1]) >= 1
    supplements = stack.query(f'sum(lienthong_supplement_requests_total{{sector="{SECTOR}",agency="{DESK}"}})')
    assert float(supplements[0]["value"][1]) >= 1
