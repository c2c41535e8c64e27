"""No caller can grow a dossier's history without a bound its procedure sets.

Two drives on the time-skipping server: an agency hammering one step with ~200
extension requests (the procedure allows one new appointment per dossier: the rest are
refused before history is written, and the dossier then completes normally), and the worst
case the bounds allow for the largest shipped procedure, whose history size is
docs/performance.md's "worst case" figure.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from definitions.calendar import load_calendar
from definitions.limits import (
    MAX_CALENDAR_APPLICATIONS,
    MAX_DATA_BYTES,
    MAX_EXTENSIONS,
    MAX_NOTE_CHARS,
    MAX_SUPPLEMENT_REQUESTS,
)
from definitions.schema import ProcedureSnapshot
from tests.workflows.catalogue import journey_data, shipped_files, shipped_snapshot
from tests.workflows.harness import (
    assigned,
    complete,
    extend,
    finished,
    recorded_events,
    resubmit,
    running_worker,
    snapshot,
    start_dossier,
    state,
    until,
)
from workflows.dossier import DossierWorkflow
from workflows.payloads import ApplyCalendar, StepStatus

DESK = "bpmc-xa-xa-tan-lap"
NOTE = "Lý do rất dài " * (MAX_NOTE_CHARS // 14)  # just under the bound, multi-byte characters
TEMPORAL_HISTORY_LIMIT_BYTES = 50 * 1024 * 1024  # the server terminates a run past this
TEMPORAL_HISTORY_LIMIT_EVENTS = 51_200
# What this test allows the worst case to reach: a small fraction of Temporal's limits.
WORST_CASE_BUDGET_BYTES = 2 * 1024 * 1024
WORST_CASE_BUDGET_EVENTS = 2_000


async def history_size(handle) -> tuple[int, int]:
    """(events, bytes) of the dossier's history as the server holds it."""
    history = await handle.fetch_history()
    return len(history.events), sum(event.ByteSize() for event in history.events)


async def test_two_hundred_extension_requests_are_refused_past_the_bound(private_time_skipping_env):
    env = private_time_skipping_env
    snap = snapshot(steps=[{"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "3d"},
                           {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "1d"}])
    assert snap.procedure.max_extensions == 1  # the legal default: one new appointment per dossier
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        await until(handle, assigned("tham-dinh"))  # 3 days left: open for an apology and new appointment

        accepted, refused = 0, []
        before = None
        for attempt in range(200):
            current = await state(handle)
            new_due = max(current.step("tham-dinh").due_at, await env.get_current_time()) + timedelta(hours=1)
            try:
                await extend(handle, "vpdk-tinh", new_due, f"{attempt}: {NOTE}"[:MAX_NOTE_CHARS], step_id="tham-dinh")
                accepted += 1
                before = await recorded_events(handle)
            except WorkflowUpdateFailedError as err:
                assert isinstance(err.cause, ApplicationError)
                refused.append((err.cause.type, err.cause.message))
        assert accepted == 1 and [kind for kind, _ in refused] == ["ExtensionLimit"] * 199
        assert "allows 1 new appointment" in refused[-1][1]
        assert await recorded_events(handle) == before  # refusals write nothing

        s = await complete(handle, "tham-dinh", "vpdk-tinh")
        assert (s.extensions, s.step("tham-dinh").extensions) == (1, 1)
        assert s.step("tham-dinh").verdict in ("early", "on_time")
        await until(handle, assigned("tra-ket-qua"))
        await complete(handle, "tra-ket-qua", DESK)
        final = await finished(handle)
    assert final.status == "completed" and final.verdict in ("early", "on_time")
    assert len([n for n in final.notes if n.kind == "extended"]) == 1


def largest_shipped() -> ProcedureSnapshot:
    return max((shipped_snapshot(path) for path in shipped_files()),
               key=lambda snap: len(list(snap.procedure.iter_steps())))


async def test_the_worst_case_history_of_the_largest_shipped_procedure_is_far_below_temporals_limits(
        private_time_skipping_env):
    """Every bound at its maximum, every text at its longest: data of MAX_DATA_BYTES, the
    procedure set to MAX_EXTENSIONS and MAX_SUPPLEMENT_REQUESTS, the dossier extended that
    often (per dossier), every supplement requested and resubmitted, MAX_CALENDAR_APPLICATIONS
    calendar Updates, then every step completed."""
    env = private_time_skipping_env
    shipped = largest_shipped()
    procedure = shipped.procedure.model_copy(update={
        "max_extensions": MAX_EXTENSIONS, "max_supplement_requests": MAX_SUPPLEMENT_REQUESTS})
    snap = shipped.model_copy(update={"procedure": procedure})
    data = journey_data(procedure)
    base = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
    data["ghi_chu"] = "x" * (MAX_DATA_BYTES - base - 20)
    assert len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()) <= MAX_DATA_BYTES

    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, data=data)
        current = await until(handle, lambda s: any(st.status == StepStatus.ASSIGNED for st in s.steps))
        calendar = load_calendar(procedure.calendar)
        for _ in range(MAX_CALENDAR_APPLICATIONS):
            await handle.execute_update(DossierWorkflow.apply_calendar, ApplyCalendar(
                calendar=procedure.calendar, snapshot=calendar.snapshot(current.received_at), reason=NOTE))

        while not current.finished:
            for st in [st for st in current.steps if st.status == StepStatus.ASSIGNED]:
                assert st.agency is not None
                if current.supplement_count < MAX_SUPPLEMENT_REQUESTS:
                    await complete(handle, st.id, st.agency, "supplement", note=NOTE)
                    current = await resubmit(handle, note=NOTE)
                    continue
                while current.extensions < MAX_EXTENSIONS:
                    step = current.step(st.id)
                    assert step is not None and step.due_at is not None and step.extendable_until is not None
                    if await env.get_current_time() > step.extendable_until:
                        break  # less than a working day left: too late for this step
                    later = calendar.add(step.due_at, "1h")  # an hour of working time: never moved back
                    current = await extend(handle, st.agency, later, NOTE, step_id=st.id)
                await complete(handle, st.id, st.agency, note=NOTE)
            await asyncio.sleep(0.05)
            current = await state(handle)
        final = await finished(handle)
        events, size = await history_size(handle)

    assert final.status == "completed" and final.supplement_count == MAX_SUPPLEMENT_REQUESTS
    ran = [st for st in final.steps if st.status == StepStatus.COMPLETED]
    assert ran and final.extensions == MAX_EXTENSIONS == sum(st.extensions for st in ran)
    print(f"\nworst case, {procedure.code} ({len(final.steps)} steps): {events} events, {size} bytes "
          f"({size / TEMPORAL_HISTORY_LIMIT_BYTES:.2%} of Temporal's 50 MB)")
    assert size < WORST_CASE_BUDGET_BYTES < TEMPORAL_HISTORY_LIMIT_BYTES
    assert events < WORST_CASE_BUDGET_EVENTS < TEMPORAL_HISTORY_LIMIT_EVENTS
