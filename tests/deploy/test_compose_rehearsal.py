"""The lienthong services of docker-compose.yml, rehearsed without Docker: each one's
entrypoint, command, environment and healthcheck exactly as the compose file writes
them, run as local processes against a real Temporal dev server and a real PostgreSQL.

What a container would change is rewritten, and only that: the host names `temporal`
and `postgresql` become the test's servers (the database URL is the test's own
database), the definitions mount becomes its source folder, and each process gets
free host ports for its container ports (every replica its own, as containers have).
The `migrate` job runs twice (a re-run is harmless), three worker replicas share the
task queue, every healthcheck command must pass, and a dossier submitted through the
CLI (as `docker compose run worker dossiers submit …`) is completed by an agency
through the gateway with a token issued the same way, and shows in the exporter.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from services.binaries import temporal_cli
from services.temporal import register_search_attributes
from tests.conftest import fresh_postgres_database
from tests.deploy.compose import REPO, env_file, resolved
from tests.deploy.test_compose import bind_mounts, environment
from tests.processes import free_port, stop_process
from tests.support.codec import TEST_CONVERTER, TEST_KEYS

BIN = Path(sys.executable).parent
CONTAINER_PORTS = ("8080", "9464", "9465", "9466")
DESK = "bpmc-xa-xa-tan-lap"


class Rehearsal:
    def __init__(self, services: dict[str, Any], temporal_address: str, database_url: str, folder: Path) -> None:
        self.services = services
        self.temporal_address = temporal_address
        self.database_url = database_url
        self.folder = folder
        self.processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def rewrite(self, text: str, ports: dict[str, str]) -> str:
        text = text.replace("temporal:7233", self.temporal_address)
        for container, host in ports.items():
            text = re.sub(rf"(?<![\d.]){container}(?!\d)", host, text)
        return text

    def environment(self, name: str, ports: dict[str, str]) -> dict[str, str]:
        service = self.services[name]
        env = {key: self.rewrite(value, ports) for key, value in environment(service).items()}
        assert env["LIENTHONG_DATABASE_URL"].startswith("postgresql+psycopg://lienthong:")
        env["LIENTHONG_DATABASE_URL"] = self.database_url
        mounts = {target: source for source, target in bind_mounts(service)}
        env["LIENTHONG_DEFINITIONS"] = str(REPO / mounts[env["LIENTHONG_DEFINITIONS"]])
        if "LIENTHONG_CODEC_KEYS" in env:  # .env.example's placeholder is refused until replaced (as it should be)
            env["LIENTHONG_CODEC_KEYS"] = TEST_KEYS
        base = {k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_", "TEMPORAL_"))}
        return {**base, **env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    def argv(self, name: str, ports: dict[str, str], command: list[str] | None = None) -> list[str]:
        service = self.services[name]
        entrypoint = service.get("entrypoint") or ["lienthong"]  # the image's ENTRYPOINT
        command = command if command is not None else list(service.get("command") or [])
        return [self.rewrite(word, ports) for word in [*entrypoint, *command]]

    def run(self, name: str, command: list[str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A one-shot (`docker compose run --rm --no-deps NAME [command]`)."""
        return subprocess.run(self.argv(name, {}, command), env=self.environment(name, {}), cwd=self.folder,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, name: str, replica: int = 1) -> dict[str, str]:
        ports = {port: str(free_port()) for port in CONTAINER_PORTS}
        log = self.folder / f"{name}-{replica}.log"
        process = subprocess.Popen(self.argv(name, ports), env=self.environment(name, ports), cwd=self.folder,
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((f"{name}-{replica}", process, log))
        return ports

    def healthy(self, name: str, ports: dict[str, str], seconds: float = 90) -> None:
        """The service's own healthcheck command, until it passes (bounded)."""
        test = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        argv = [self.rewrite(word, ports) for word in test[1:]]
        argv[0] = str(BIN / argv[0]) if argv[0] == "python" else argv[0]
        give_up = time.monotonic() + seconds
        while True:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            if result.returncode == 0:
                return
            if time.monotonic() > give_up:
                pytest.fail(f"{name}: healthcheck {argv} never passed: {result.stderr[-500:]}\n{self.logs()}")
            time.sleep(1)

    def logs(self) -> str:
        return "\n".join(f"--- {label}\n{log.read_text(errors='replace')[-2000:]}" for label, _, log in self.processes)

    def stop_all(self) -> None:
        for _, process, _ in self.processes:  # what `docker compose down` sends
            stop_process(process, sig=signal.SIGTERM)


@pytest.fixture
def database(postgres_server_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_server_url, prefix="compose") as url:
        yield url


async def test_the_compose_services_run_as_written(database: str, tmp_path: Path) -> None:
    services = resolved(env_file())["services"]
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=TEST_CONVERTER,
        ui=False, dev_server_log_level="error",
    ) as env:
        # What the temporal-namespace job does (its list equals the workflow's: test_compose).
        await register_search_attributes(env.client)
        address = env.client.service_client.config.target_host
        stack = Rehearsal(services, address, database, tmp_path)
        try:
            for attempt in ("first", "again"):
                migrate = stack.run("migrate")
                assert migrate.returncode == 0, f"migrate ({attempt}): {migrate.stdout}{migrate.stderr}"
            assert "unchanged" in migrate.stdout and "deployed" in migrate.stdout

            workers = [stack.start("worker", replica) for replica in (1, 2, 3)]  # --scale worker=3
            gateway = stack.start("gateway")
            exporter = stack.start("exporter")
            for ports in workers:
                stack.healthy("worker", ports)
            stack.healthy("gateway", gateway)
            stack.healthy("exporter", exporter)

            issued = stack.run("worker", ["agencies", "issue-token", DESK])
            assert issued.returncode == 0, issued.stderr
            token = issued.stdout.strip().splitlines()[-1]
            dossier = f"HS-COMPOSE-{uuid.uuid4().hex[:8]}"
            data = json.dumps({"commune": "xa-tan-lap", "area_m2": 320, "applicant": "Nguyễn Văn A"})
            submitted = stack.run("worker", ["dossiers", "submit", "--procedure", "1.012756", "--id", dossier,
                                             "--data", data, "--received-by", DESK])
            assert submitted.returncode == 0, submitted.stderr + stack.logs()

            api = f"http://127.0.0.1:{gateway['8080']}/v1/"
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
            async with httpx.AsyncClient(base_url=api, timeout=30) as http:
                for _ in range(120):  # routed by one of the three workers, just after submission
                    inbox = await http.get("inbox", headers={"Authorization": f"Bearer {token}"})
                    assert inbox.status_code == 200, inbox.text
                    if any(item["dossier_id"] == dossier for item in inbox.json()["items"]):
                        break
                    await asyncio.sleep(0.5)
                else:
                    pytest.fail(f"{dossier} never reached {DESK}'s inbox through the gateway\n{stack.logs()}")
                done = await http.post(f"dossiers/{dossier}/steps/tiep-nhan/complete", headers=headers,
                                       json={"outcome": "approved"})
                assert done.status_code == 200, done.text
                assert next(s for s in done.json()["steps"] if s["id"] == "tiep-nhan")["status"] == "completed"

            metrics = ""
            async with httpx.AsyncClient(timeout=30) as http:
                for _ in range(60):
                    metrics = (await http.get(f"http://127.0.0.1:{exporter['9464']}/metrics")).text
                    if re.search(r'lienthong_dossiers_open\{[^}]*sector="G13-TN01"[^}]*\} 1\.0', metrics):
                        break
                    await asyncio.sleep(0.5)
                else:
                    pytest.fail(f"the exporter never counted the open dossier:\n{metrics[-2000:]}")
            assert "lienthong_exporter_store_up 1.0" in metrics
            for label, process, _ in stack.processes:
                assert process.poll() is None, f"{label} exited with {process.returncode}\n{stack.logs()}"
        finally:
            stack.stop_all()
