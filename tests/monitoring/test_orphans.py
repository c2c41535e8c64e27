"""`lienthong dossiers orphans`: a dossier whose workflow was terminated, and one Temporal
never knew, are listed, then marked abandoned: they leave the open gauges, the agencies'
inboxes, and count as abandoned; nothing else in the store changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from monitoring.collector import read_gauges
from services.binaries import temporal_cli
from store import projection
from store.models import DossierEventRow, DossierRow, DossierStepRow, InboxItemRow
from tests.monitoring.builders import NOW, dossier, step
from tests.workflows.harness import assigned, running_worker, snapshot, start_dossier, until
from workers.cli import run
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES

SECTOR = "G13-TN01"  # the harness's procedure


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli(),
                                                search_attributes=SEARCH_ATTRIBUTES,
                                                data_converter=pydantic_data_converter, dev_server_log_level="error")
    try:
        yield env
    finally:
        await env.shutdown()


def snapshot_of(sessions: sessionmaker[Session], dossier_id: str) -> dict[str, Any]:
    """Everything the store holds about one dossier."""
    with sessions() as session:
        row = session.get(DossierRow, dossier_id)
        assert row is not None
        columns = [c.key for c in DossierRow.__table__.columns]
        return {
            "row": {c: getattr(row, c) for c in columns},
            "steps": sorted(session.execute(select(DossierStepRow.step_id, DossierStepRow.status,
                                                   DossierStepRow.agency)
                                            .where(DossierStepRow.dossier_id == dossier_id)).tuples().all()),
            "events": session.execute(select(DossierEventRow.seq, DossierEventRow.kind)
                                      .where(DossierEventRow.dossier_id == dossier_id)
                                      .order_by(DossierEventRow.seq)).tuples().all(),
            "inbox": session.execute(select(InboxItemRow.agency, InboxItemRow.step_id)
                                     .where(InboxItemRow.dossier_id == dossier_id)).tuples().all(),
        }


async def orphans_cli(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    """The command in-process, on a thread of its own (it runs its own event loop)."""
    capsys.readouterr()
    assert await asyncio.to_thread(run, ["dossiers", "orphans", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


async def test_terminated_and_unknown_dossiers_are_listed_then_leave_the_open_gauges(
        dev_server: WorkflowEnvironment, deployed_sessions: sessionmaker[Session], migrated_url: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sessions = deployed_sessions
    monkeypatch.setenv("LIENTHONG_DATABASE_URL", migrated_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_server.client.service_client.config.target_host)
    async with running_worker(dev_server.client, sessions) as task_queue:
        live = await start_dossier(dev_server.client, task_queue, snapshot())
        doomed = await start_dossier(dev_server.client, task_queue, snapshot())
        for handle in (live, doomed):
            await until(handle, assigned("tiep-nhan"), "routed")
        for _ in range(200):  # the store write follows the transition
            with sessions() as session:
                if all(projection.last_seq(session, h.id) for h in (live, doomed)) and \
                        session.scalar(select(InboxItemRow.dossier_id).where(InboxItemRow.dossier_id == doomed.id)):
                    break
        else:
            pytest.fail("the dossiers never reached the store")
        await doomed.terminate(reason="test: an operator ended it in the Temporal UI")
        # A dossier the projection has and Temporal never knew (a dev server restarted in memory).
        with sessions.begin() as session:
            projection.apply_state(session, dossier("HS-GHOST", sector=SECTOR, steps=[
                step("tham-dinh", "vpdk-tinh")]), 3, now=NOW)

        with sessions() as session:
            before = read_gauges(session)
        live_before = snapshot_of(sessions, live.id)
        doomed_before = snapshot_of(sessions, doomed.id)

        # Listed, nothing changed.
        found = await orphans_cli(capsys)
        by_id = {f["dossier_id"]: f for f in found}
        assert set(by_id) == {doomed.id, "HS-GHOST"}, found
        assert by_id[doomed.id]["temporal"] == "terminated" and by_id["HS-GHOST"]["temporal"] == "unknown"
        assert all(f["kind"] == "orphan" and not f["marked"] and f["sector"] == SECTOR for f in found)
        assert snapshot_of(sessions, doomed.id) == doomed_before
        with sessions() as session:
            assert read_gauges(session, before.at) == before

        # Marked: out of the open families, counted as abandoned.
        marked = await orphans_cli(capsys, "--mark")
        assert {f["dossier_id"] for f in marked if f["marked"]} == {doomed.id, "HS-GHOST"}, marked
        with sessions() as session:
            after = read_gauges(session, before.at)
        open_before = sum(v for (s, _, _), v in before.open.items() if s == SECTOR)
        open_after = sum(v for (s, _, _), v in after.open.items() if s == SECTOR)
        assert open_after == open_before - 2
        assert after.abandoned[SECTOR] == before.abandoned[SECTOR] + 2 == 2
        assert sum(after.procedure_open.values()) == sum(before.procedure_open.values()) - 2
        held_before = sum(v for (s, _), v in before.steps_open.items() if s == SECTOR)
        assert sum(v for (s, _), v in after.steps_open.items() if s == SECTOR) == held_before - 2
        # The terminated dossier: abandoned, its held step skipped and out of the inbox;
        # its state and audit log as the workflow left them.
        doomed_after = snapshot_of(sessions, doomed.id)
        assert doomed_after["row"]["status"] == "abandoned"
        assert {k: v for k, v in doomed_after["row"].items() if k not in ("status", "updated_at")} == \
            {k: v for k, v in doomed_before["row"].items() if k not in ("status", "updated_at")}
        assert doomed_after["events"] == doomed_before["events"]
        assert doomed_after["inbox"] == [] and doomed_before["inbox"]
        assert [s for s in doomed_after["steps"] if s[1] == "assigned"] == []
        # The live dossier: untouched, and it still moves.
        assert snapshot_of(sessions, live.id) == live_before
        assert (await live.describe()).status.name == "RUNNING"

        # Nothing more to find; the abandoned ones are listed from the store.
        assert await orphans_cli(capsys) == []
        assert {f["dossier_id"] for f in await orphans_cli(capsys, "--abandoned")} == {doomed.id, "HS-GHOST"}
