"""Helpers to run DossierWorkflow against a real Temporal server in tests."""

from __future__ import annotations

import asyncio
import functools
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.portal import PortalConfig
from definitions.calendar import load_calendar
from definitions.schema import Procedure, ProcedureSnapshot
from services.submission import dossier_agencies
from store import deliveries
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from workers.worker import build_worker
from workflows.dossier import DossierWorkflow
from workflows.payloads import (
    ChangeAnswer,
    CompleteStep,
    DeskAction,
    DossierInput,
    DossierResult,
    DossierState,
    Extend,
    Resubmit,
    ReturnStep,
)

BASE_PROCEDURE: dict[str, Any] = {
    "code": "T.000001",
    "name": "Thủ tục thử nghiệm",
    "sector": "G13-TN01",
    "level": "xa",
    "version": 1,
    "calendar": "continuous",
    "deadline": "3d",
    "steps": [
        {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "1d"},
        {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "1d", "escalate_to": "so-nnmt"},
        {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "1d"},
    ],
}
DATA = {"commune": "xa-tan-lap", "area_m2": 320}


def snapshot(**overrides: Any) -> ProcedureSnapshot:
    body = {**BASE_PROCEDURE, **overrides}
    return ProcedureSnapshot(procedure=Procedure.model_validate(body), content_hash="sha256:test")


_started: dict[str, list[WorkflowHandle[Any, Any]]] = {}
_stores: dict[str, sessionmaker[Session]] = {}


@functools.cache
def default_store() -> sessionmaker[Session]:
    """One migrated SQLite projection database for this test process."""
    folder = Path(tempfile.mkdtemp(prefix="lienthong-test-"))
    url = f"sqlite:///{folder / 'projection.db'}"
    upgrade(url)
    return make_session_factory(make_engine(url))


@asynccontextmanager
async def running_worker(client: Client, sessions: sessionmaker[Session] | None = None,
                         http: httpx.Client | None = None, portal: PortalConfig | None = None) -> AsyncIterator[str]:
    """A worker on a fresh task queue (with `portal`: its store writes queue the National
    Portal's changes). Dossiers it leaves running are terminated on exit: on the shared
    time-skipping server, orphans' timers would keep firing with no worker to take them
    and stall the clock for later tests."""
    task_queue = f"test-{uuid.uuid4()}"
    _started[task_queue] = []
    _stores[task_queue] = sessions or default_store()
    async with build_worker(client, task_queue, _stores[task_queue], http=http, portal=portal):
        try:
            yield task_queue
        finally:
            for handle in _started.pop(task_queue):
                await _terminate_when_idle(handle)
            _stores.pop(task_queue)


async def _terminate_when_idle(handle: WorkflowHandle[Any, Any]) -> None:
    """Terminate a dossier the test left running, once it is idle: the test server
    stops skipping time while an activity or a workflow task is outstanding, and one
    cut off by a termination keeps it stopped for every later test on that server. A
    store write is a local activity, invisible to the server, and the workflow task it
    belongs to can come back right after one completes: idle means idle three times
    in a row."""
    quiet = 0
    for _ in range(400):
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return
        busy = desc.raw_description.pending_activities or desc.raw_description.HasField("pending_workflow_task")
        quiet = 0 if busy else quiet + 1
        if quiet >= 3:
            break
        await asyncio.sleep(0.05)
    try:
        await handle.terminate(reason="test finished")
    except RPCError:
        # It may have finished on its own since we looked: then there is nothing to do.
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            raise


def dossier_input(snap: ProcedureSnapshot, dossier_id: str, data: dict[str, Any],
                  received_at: datetime | None = None, sessions: sessionmaker[Session] | None = None,
                  **fields: Any) -> DossierInput:
    """What submission would start: the calendar resolved into its snapshot, and which
    of the dossier's agencies have a webhook in `sessions`' registry."""
    procedure = snap.procedure
    calendar = load_calendar(procedure.calendar).snapshot(received_at or datetime.now(UTC))
    agencies = dossier_agencies(snap, data)
    webhooks: list[str] = []
    if sessions is not None:
        with sessions() as session:
            webhooks = deliveries.agencies_with_webhooks(session, agencies)
    return DossierInput(dossier_id=dossier_id, snapshot=snap, data=data, received_at=received_at,
                        calendar=calendar, webhook_agencies=webhooks, **fields)


async def start_dossier(
    client: Client,
    task_queue: str,
    snap: ProcedureSnapshot | None = None,
    data: dict[str, Any] | None = None,
    received_at: datetime | None = None,
    dossier_id: str | None = None,
    sessions: sessionmaker[Session] | None = None,
    **fields: Any,
) -> WorkflowHandle[DossierWorkflow, DossierResult]:
    """`fields`: more of DossierInput (channel, received_by, await_receipt, result_desk)."""
    dossier_id = dossier_id or f"HS-{uuid.uuid4().hex[:10]}"
    handle = await client.start_workflow(
        DossierWorkflow.run,
        dossier_input(snap or snapshot(), dossier_id, DATA if data is None else data, received_at,
                      sessions or _stores.get(task_queue), **fields),
        id=dossier_id,
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    _started.setdefault(task_queue, []).append(handle)
    return handle


async def finished(handle: WorkflowHandle[DossierWorkflow, DossierResult]) -> DossierState:
    """Wait for the dossier's end; its final state (the result is only a summary)."""
    result = await handle.result()
    final = await state(handle)
    assert (final.status, final.last_event_seq) == (result.status, result.last_event_seq), (result, final)
    return final


async def state(handle: WorkflowHandle[DossierWorkflow, DossierResult]) -> DossierState:
    return await handle.query(DossierWorkflow.state)


async def complete(handle: WorkflowHandle[DossierWorkflow, DossierResult], step_id: str, agency: str,
                   outcome: str = "approved", note: str | None = None, update_id: str | None = None) -> DossierState:
    """The Update, then the state it led to (the Update's own answer is brief)."""
    answer = await handle.execute_update(
        DossierWorkflow.complete_step,
        CompleteStep(step_id=step_id, agency=agency, outcome=outcome, note=note),
        id=update_id,
    )
    return await _after(handle, answer)


async def resubmit(handle: WorkflowHandle[DossierWorkflow, DossierResult], note: str | None = None,
                   agency: str | None = None) -> DossierState:
    """Relayed by `agency`; by default the agency that asked for the supplement."""
    if agency is None:
        state = await handle.query(DossierWorkflow.state)
        asked = [n for n in state.notes if n.kind == "supplement_requested" and n.agency]
        agency = asked[-1].agency if asked else "bpmc-xa-xa-tan-lap"
    assert agency is not None
    change = Resubmit(agency=agency, note=note)
    return await _after(handle, await handle.execute_update(DossierWorkflow.resubmit, change))


async def refused(coro, kind: str) -> str:
    """The refusal an Update got: its kind must be `kind`; returns its message."""
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await coro
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type == kind, (cause.type, cause.message)
    return cause.message


async def desk(handle: WorkflowHandle[DossierWorkflow, DossierResult], action: str, agency: str,
               note: str | None = None) -> DossierState:
    """A desk's change: `receive`, `refuse_receipt` or `withdraw`."""
    update = {"receive": DossierWorkflow.receive, "refuse_receipt": DossierWorkflow.refuse_receipt,
              "withdraw": DossierWorkflow.withdraw}[action]
    return await _after(handle, await handle.execute_update(update, DeskAction(agency=agency, note=note)))


async def send_back(handle: WorkflowHandle[DossierWorkflow, DossierResult], step_id: str, agency: str, to: str,
                    note: str = "chưa đạt, trả lại") -> DossierState:
    change = ReturnStep(step_id=step_id, agency=agency, to=to, note=note)
    return await _after(handle, await handle.execute_update(DossierWorkflow.return_step, change))


async def extend(handle: WorkflowHandle[DossierWorkflow, DossierResult], agency: str, new_due: datetime,
                 reason: str, step_id: str | None = None) -> DossierState:
    answer = await handle.execute_update(
        DossierWorkflow.extend, Extend(agency=agency, new_due=new_due, reason=reason, step_id=step_id)
    )
    return await _after(handle, answer)


async def _after(handle: WorkflowHandle[DossierWorkflow, DossierResult], answer: ChangeAnswer) -> DossierState:
    current = await state(handle)
    assert current.last_event_seq >= answer.seq and answer.dossier_id == current.dossier_id, (answer, current)
    return current


async def until(handle: WorkflowHandle[DossierWorkflow, DossierResult], predicate, what: str = "condition",
                attempts: int = 200) -> DossierState:
    """Poll the `state` query until `predicate(state)` holds (the workflow runs on
    another task; this waits for it, it does not measure it)."""

    current = await state(handle)
    for _ in range(attempts):
        if predicate(current):
            return current
        await asyncio.sleep(0.05)
        current = await state(handle)
    raise AssertionError(f"dossier {handle.id}: {what} never held; state: {current.model_dump_json(indent=1)}")


def assigned(step_id: str):
    return lambda s: s.step(step_id) is not None and s.step(step_id).status == "assigned"


async def recorded_events(handle) -> list[str]:
    """History events other than workflow-task bookkeeping (the test server writes
    tasks for rejected updates; a real server's speculative tasks leave no trace), once
    the dossier's first store write (a local activity marker) is in history and no
    workflow task is in flight."""
    for _ in range(200):
        history = await handle.fetch_history()
        kinds = [EventType.Name(e.event_type) for e in history.events]
        idle = not (await handle.describe()).raw_description.HasField("pending_workflow_task")
        if idle and "EVENT_TYPE_MARKER_RECORDED" in kinds:
            break
        await asyncio.sleep(0.05)
    return [kind for kind in kinds if "WORKFLOW_TASK" not in kind]


async def audit_log(task_queue: str, handle: WorkflowHandle[DossierWorkflow, DossierResult]) -> list[tuple[str, int | None]]:
    """(kind, portal status) of the dossier's audit-log events in the worker's store, once
    the store holds every event the workflow recorded (writes follow the answers)."""
    from store.projection import list_events

    sessions = _stores[task_queue]
    for _ in range(200):
        wanted = (await handle.query(DossierWorkflow.state)).last_event_seq
        with sessions() as session:
            rows = [(row.kind, row.portal_status) for row in list_events(session, handle.id)]
        if len(rows) >= wanted:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"the store holds {len(rows)} of {wanted} events of {handle.id}")
