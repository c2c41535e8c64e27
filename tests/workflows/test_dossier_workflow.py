"""DossierWorkflow on the time-skipping test server: every deadline path.

Procedures here use the `continuous` calendar (1d = 24 h) unless the test is
about working time, so expected instants are plain arithmetic on the receipt.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from definitions.calendar import calendar_from_snapshot, load_calendar
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

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DESK = "bpmc-xa-xa-tan-lap"


@pytest.fixture
def env(time_skipping_env):
    return time_skipping_env


async def refused(coro, kind: str) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await coro
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type == kind, (cause.type, cause.message)
    return cause.message


async def test_steps_run_in_order_and_the_dossier_completes_on_time(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq)
        first = await until(handle, assigned("tiep-nhan"))
        assert [s.status for s in first.steps] == ["assigned", "pending", "pending"]
        assert first.status == "processing" and first.portal_status == 4
        # continuous calendar: the clock starts at receipt, 3d total, 1d for the step
        assert first.due_at == first.received_at + timedelta(days=3)
        assert first.steps[0].due_at == first.steps[0].assigned_at + timedelta(days=1)

        after = await complete(handle, "tiep-nhan", DESK)
        assert after.step("tiep-nhan").status == "completed"
        assert after.step("tiep-nhan").verdict in ("early", "on_time")
        await until(handle, assigned("tham-dinh"))
        await complete(handle, "tham-dinh", "vpdk-tinh")
        await until(handle, assigned("tra-ket-qua"))
        await complete(handle, "tra-ket-qua", DESK, note="trả kết quả tại bộ phận một cửa")

        result = await finished(handle)
        assert result.status == "completed" and result.portal_status == 10
        assert result.verdict in ("early", "on_time")
        assert result.completed_at is not None and not result.overdue
        assert all(s.status == "completed" for s in result.steps)
        # The query still answers once the dossier is finished.
        assert (await state(handle)).status == "completed"


async def test_overdue_step_is_escalated_and_the_agency_stays_responsible(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq)
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", DESK)
        s = await until(handle, assigned("tham-dinh"))
        due = s.step("tham-dinh").due_at

        await env.sleep(timedelta(hours=23))  # not yet due
        s = await state(handle)
        assert not s.step("tham-dinh").overdue and s.step("tham-dinh").escalations == 0

        await env.sleep(timedelta(hours=2))  # past the step's due
        s = await until(handle, lambda s: s.step("tham-dinh").overdue, "step overdue")
        step = s.step("tham-dinh")
        assert step.status == "assigned" and step.agency == "vpdk-tinh"  # still theirs
        assert step.escalations == 1 and step.due_at == due
        assert s.status == "processing"  # overdue never fails a dossier
        assert not s.overdue  # the dossier's own 3d due has not passed

        await env.sleep(timedelta(days=2))
        s = await until(handle, lambda s: s.overdue, "dossier overdue")
        assert s.step("tham-dinh").escalations == 1  # one escalation per missed due

        done = await complete(handle, "tham-dinh", "vpdk-tinh")
        assert done.step("tham-dinh").verdict == "late"
        await until(handle, assigned("tra-ket-qua"))
        await complete(handle, "tra-ket-qua", DESK)
        result = await finished(handle)
        assert result.status == "completed" and result.verdict == "late"


VN_GOV_STEP = {"id": "xac-dinh-thue", "agency": "thue-co-so", "deadline": "3d", "escalate_to": "thue-tinh"}


async def test_step_due_is_counted_across_tet_2026(env):
    """Received Thursday 2026-02-12 10:00 (before Tết 2026, 16–20 Feb off): 3 working
    days of tax work (5.5 h on the 12th, 8 h on the 13th, 8 h on the 23rd, 2.5 h on
    the 24th) end on Tuesday 2026-02-24 10:00, not during Tết. That instant is long
    past on the test server's clock, so the step is overdue at once."""
    received = datetime(2026, 2, 12, 10, 0, tzinfo=VN)
    snap = snapshot(calendar="vn-gov", deadline="10d", steps=[VN_GOV_STEP])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, received_at=received)
        s = await until(handle, lambda s: s.step("xac-dinh-thue").overdue, "overdue after Tết")
        assert s.clock_started_at == received
        step = s.step("xac-dinh-thue")
        assert step.assigned_at == received  # with the desk since receipt
        assert step.due_at == datetime(2026, 2, 24, 10, 0, tzinfo=VN)
        # 10 working days from Thu 12 Feb 10:00: 12, 13, 23, 24, 25, 26, 27 Feb, 2, 3, 4 Mar, 5 Mar 10:00
        assert s.due_at == datetime(2026, 3, 5, 10, 0, tzinfo=VN)
        assert s.overdue and s.step("xac-dinh-thue").escalations == 1


async def test_overdue_timer_across_tet_2027_on_the_vn_gov_calendar(private_time_skipping_env):
    """A real timer: received on Wednesday 2027-02-03 at 09:00, just before the Tết
    2027 holidays (4–10 Feb off). 3 working days = 24 h: 6.5 h on the 3rd, 8 h on
    Thu 11th and Fri 12th, 1.5 h on Monday 15th: due 2027-02-15 09:00."""
    env = private_time_skipping_env
    target = datetime(2027, 2, 3, 9, 0, tzinfo=VN)
    now = await env.get_current_time()
    assert now < target, "the test server's clock is already past Tết 2027"
    await env.sleep(target - now)
    snap = snapshot(calendar="vn-gov", deadline="5d", steps=[VN_GOV_STEP])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        s = await until(handle, assigned("xac-dinh-thue"))
        step = s.step("xac-dinh-thue")
        # (the clock was moved to 09:00 give or take the milliseconds the calls took)
        assert step.due_at.astimezone(VN).replace(second=0, microsecond=0) == datetime(2027, 2, 15, 9, 0, tzinfo=VN)
        assert step.due_at - step.assigned_at > timedelta(days=9)  # Tết is not working time

        await env.sleep(step.due_at - await env.get_current_time() - timedelta(minutes=5))
        assert not (await state(handle)).step("xac-dinh-thue").overdue
        await env.sleep(timedelta(minutes=10))
        s = await until(handle, lambda s: s.step("xac-dinh-thue").overdue, "overdue after Tết 2027")
        assert s.step("xac-dinh-thue").escalations == 1


async def test_supplement_pauses_the_clock_and_resubmission_reapplies_the_rest(env):
    snap = snapshot(deadline="3d", steps=[{"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "2d"}])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        s = await until(handle, assigned("tham-dinh"))
        step_due, dossier_due = s.step("tham-dinh").due_at, s.due_at

        await env.sleep(timedelta(hours=12))
        paused = await complete(handle, "tham-dinh", "vpdk-tinh", "supplement", note="thiếu bản sao sổ hộ khẩu")
        assert paused.status == "awaiting_supplement" and paused.portal_status == 5
        assert paused.supplement_count == 1 and paused.notes[-1].kind == "supplement_requested"
        paused_at = paused.paused_at

        # The applicant takes 4 days: far past both dues, yet nothing turns overdue.
        await env.sleep(timedelta(days=4))
        s = await state(handle)
        assert not s.overdue and not s.step("tham-dinh").overdue
        message = await refused(complete(handle, "tham-dinh", "vpdk-tinh"), "AwaitingSupplement")
        assert "supplement" in message

        resumed = await resubmit(handle, note="đã bổ sung")
        assert resumed.status == "processing" and resumed.paused_at is None
        pause = resumed.notes[-1].at - paused_at
        assert resumed.step("tham-dinh").due_at == step_due + pause
        assert resumed.due_at == dossier_due + pause
        assert resumed.original_due_at == resumed.due_at  # the pause is not the agencies' time

        done = await complete(handle, "tham-dinh", "vpdk-tinh")
        assert done.step("tham-dinh").verdict in ("early", "on_time")
        result = await finished(handle)
        assert result.status == "completed" and result.verdict in ("early", "on_time")


async def test_restart_mode_restarts_the_total_deadline_from_resubmission(env):
    snap = snapshot(deadline="3d", on_supplement="restart",
                    steps=[{"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "2d"}])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        await until(handle, assigned("tham-dinh"))
        await env.sleep(timedelta(days=1))
        await complete(handle, "tham-dinh", "vpdk-tinh", "supplement", note="sai mẫu đơn")
        await env.sleep(timedelta(days=2))
        resumed = await resubmit(handle)
        resubmitted_at = resumed.notes[-1].at
        assert resumed.due_at == resubmitted_at + timedelta(days=3)
        assert resumed.original_due_at == resumed.due_at
        assert resumed.step("tham-dinh").due_at == resubmitted_at + timedelta(days=2)
        assert resumed.clock_started_at == resubmitted_at


async def test_supplement_deadline_passed_rejects_the_dossier(env):
    snap = snapshot(supplement_deadline="2d", steps=[{"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "2d"}])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        await until(handle, assigned("tham-dinh"))
        s = await complete(handle, "tham-dinh", "vpdk-tinh", "supplement", note="thiếu giấy tờ")
        assert s.supplement_due_at == s.paused_at + timedelta(days=2)
        await env.sleep(timedelta(days=1))
        assert (await state(handle)).status == "awaiting_supplement"
        await env.sleep(timedelta(days=1, hours=1))
        result = await finished(handle)
        assert result.status == "rejected" and result.portal_status == 8
        assert "did not supplement within 2d" in (result.result_note or "")
        assert result.notes[-1].kind == "supplement_expired"
        assert result.step("tham-dinh").status == "skipped"


async def test_extension_by_the_late_agency_moves_the_appointment(env):
    snap = snapshot(deadline="4d", max_extensions_per_step=2, steps=[
        {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "1d"},
        {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "2d", "escalate_to": "so-nnmt"},
    ])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", DESK)
        s = await until(handle, assigned("tham-dinh"))
        original = s.step("tham-dinh").due_at

        # Too early: more than a working day (24 h here) is left.
        await refused(extend(handle, "vpdk-tinh", original + timedelta(hours=6), "chờ ý kiến sở"), "NotLate")
        await env.sleep(timedelta(hours=30))  # less than a day left: about to be late
        # Only the agency holding the step may apologise, it must say why, and move the due forward.
        await refused(extend(handle, "so-tai-chinh", original + timedelta(hours=6), "lý do"), "NotCurrent")
        await refused(extend(handle, "vpdk-tinh", original + timedelta(hours=6), "  "), "ReasonRequired")
        await refused(extend(handle, "vpdk-tinh", original - timedelta(hours=1), "lý do"), "BadExtension")

        first_due = original + timedelta(hours=6)
        s = await extend(handle, "vpdk-tinh", first_due, "chờ ý kiến sở")
        step = s.step("tham-dinh")
        assert step.due_at == first_due and step.original_due_at == original and step.extensions == 1
        assert not step.overdue
        assert s.due_at == max(first_due, s.original_due_at)
        assert s.notes[-1].kind == "extended" and "chờ ý kiến sở" in s.notes[-1].text

        # Past the original due but before the new appointment: not escalated yet.
        await env.sleep(original + timedelta(hours=3) - await env.get_current_time())
        assert (await state(handle)).step("tham-dinh").escalations == 0
        # The new appointment passes too: late, escalated.
        await env.sleep(timedelta(hours=4))
        s = await until(handle, lambda s: s.step("tham-dinh").escalations == 1, "escalated after extension")
        assert s.step("tham-dinh").overdue

        # A late step may be extended again; when that due passes, escalated again.
        second_due = await env.get_current_time() + timedelta(hours=2)
        await extend(handle, "vpdk-tinh", second_due, "cần xác minh thực địa")
        await env.sleep(timedelta(hours=3))
        s = await until(handle, lambda s: s.step("tham-dinh").escalations == 2, "second escalation")
        done = await complete(handle, "tham-dinh", "vpdk-tinh")
        assert done.step("tham-dinh").verdict == "late"  # judged against the original due
        assert done.step("tham-dinh").extensions == 2


async def test_an_extension_is_bounded_and_kept_in_working_time(env):
    """A new appointment is at most `max_extension` of working time past the current due
    (a year-9999 instant is refused before it reaches any write), and one asked outside
    working time moves to the end of that working day, saying so."""
    snap = snapshot(calendar="vn-gov", deadline="3d", max_extension="2d", steps=[
        {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "1d"},
    ])
    # The calendar the workflow computes on: the snapshot its input carries (made now).
    gov = calendar_from_snapshot(load_calendar("vn-gov").snapshot(datetime.now(UTC)))
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        step = (await until(handle, assigned("tham-dinh"))).step("tham-dinh")
        due = step.due_at
        assert due is not None and step.extendable_from is not None
        await env.sleep(max(timedelta(0), step.extendable_from - await env.get_current_time()))
        latest = gov.add(due, "2d")
        message = await refused(extend(handle, "vpdk-tinh", latest + timedelta(minutes=1), "lý do"), "BadExtension")
        assert "max_extension" in message and latest.isoformat() in message
        await refused(extend(handle, "vpdk-tinh", datetime.fromisoformat("9999-12-31T23:59:59-23:59"), "lý do"),
                      "BadExtension")
        unchanged = await state(handle)
        assert unchanged.step("tham-dinh").due_at == due and unchanged.step("tham-dinh").extensions == 0

        day = gov.next_working_day(due.astimezone(gov.timezone).date())
        asked = datetime.combine(day, time(20, 0), tzinfo=gov.timezone)  # after office hours
        assert not gov.is_working_time(asked)
        s = await extend(handle, "vpdk-tinh", asked, "chờ ý kiến sở")
        moved = s.step("tham-dinh").due_at
        assert moved == gov.periods_on(day)[-1][1] and due < moved < asked
        assert "moved into working time" in s.notes[-1].text


async def test_rejection_ends_the_dossier_with_the_note(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq)
        await until(handle, assigned("tiep-nhan"))
        await refused(complete(handle, "tiep-nhan", DESK, "rejected"), "NoteRequired")
        await complete(handle, "tiep-nhan", DESK, "rejected", note="hồ sơ không thuộc thẩm quyền")
        result = await finished(handle)
        assert result.status == "rejected" and result.portal_status == 8
        assert result.result_note == "hồ sơ không thuộc thẩm quyền"
        assert [s.status for s in result.steps] == ["rejected", "pending", "pending"]
        assert result.verdict in ("early", "on_time")


PARALLEL = [
    {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "0.5d"},
    {"parallel": [
        {"id": "xac-dinh-thue", "agency": "thue-co-so", "deadline": "1d"},
        {"sequence": [
            {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "1d"},
            {"id": "trinh-ky", "agency": "vpdk-tinh", "deadline": "0.5d", "when": {"field": "area_m2", "gt": 500}},
        ]},
    ]},
    {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "0.5d"},
]


@pytest.mark.parametrize("order", [["xac-dinh-thue", "tham-dinh"], ["tham-dinh", "xac-dinh-thue"]])
async def test_parallel_branches_finish_in_either_order(env, order):
    agencies = {"xac-dinh-thue": "thue-co-so", "tham-dinh": "vpdk-tinh"}
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snapshot(steps=PARALLEL))
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", DESK)
        s = await until(handle, lambda s: all(s.step(i).status == "assigned" for i in order), "both branches")
        assert s.step("tra-ket-qua").status == "pending"

        first = await complete(handle, order[0], agencies[order[0]])
        assert first.step("tra-ket-qua").status == "pending"  # waits for every branch
        await complete(handle, order[1], agencies[order[1]])
        s = await until(handle, assigned("tra-ket-qua"))
        assert s.step("trinh-ky").status == "skipped"  # area 320 m² is not > 500
        await complete(handle, "tra-ket-qua", DESK)
        assert (await finished(handle)).status == "completed"


async def test_when_step_runs_when_its_condition_holds(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snapshot(steps=PARALLEL),
                                     data={"commune": "xa-tan-lap", "area_m2": 812.5})
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", DESK)
        await until(handle, assigned("tham-dinh"))
        await complete(handle, "tham-dinh", "vpdk-tinh")
        s = await until(handle, assigned("trinh-ky"))
        assert s.step("trinh-ky").agency == "vpdk-tinh"


async def test_refused_completions_change_nothing(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq)
        before = await until(handle, assigned("tiep-nhan"))
        events = await recorded_events(handle)

        assert "belongs to bpmc-xa-xa-tan-lap" in await refused(
            complete(handle, "tiep-nhan", "vpdk-tinh"), "WrongAgency")
        assert "not been routed" in await refused(complete(handle, "tham-dinh", "vpdk-tinh"), "NotCurrent")
        assert "expected approved, supplement, obligation or rejected" in await refused(
            complete(handle, "tiep-nhan", DESK, "maybe"), "UnknownOutcome")
        assert "no step 'khong-co'" in await refused(complete(handle, "khong-co", DESK), "UnknownStep")
        await refused(resubmit(handle), "NotAwaitingSupplement")

        assert await state(handle) == before
        assert await recorded_events(handle) == events  # rejected before history is written


async def test_finished_dossier_refuses_changes(env):
    snap = snapshot(steps=[{"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "1d"}])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", DESK)
        result = await finished(handle)
        # The run is closed: the server itself refuses (the CLI says "finished").
        with pytest.raises((RPCError, WorkflowUpdateFailedError)):
            await complete(handle, "tiep-nhan", DESK)
        assert (await state(handle)).model_dump() == result.model_dump()


async def test_a_retried_completion_with_the_same_update_id_is_applied_once(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq)
        await until(handle, assigned("tiep-nhan"))
        key = f"agency-request-{uuid.uuid4()}"
        first = await complete(handle, "tiep-nhan", DESK, update_id=key)
        again = await complete(handle, "tiep-nhan", DESK, update_id=key)
        assert again == first  # the first answer, not a "not current" refusal
        s = await until(handle, assigned("tham-dinh"))
        assert s.step("tiep-nhan").completed_at == first.step("tiep-nhan").completed_at


async def test_the_same_dossier_id_cannot_start_twice(env):
    from temporalio.exceptions import WorkflowAlreadyStartedError

    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq)
        with pytest.raises(WorkflowAlreadyStartedError):
            await start_dossier(env.client, tq, dossier_id=handle.id)
