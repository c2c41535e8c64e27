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
from temporalio.service import RPCError

from definitions.calendar import calendar_from_snapshot, load_calendar
from tests.workflows.harness import (
    assigned,
    complete,
    extend,
    finished,
    recorded_events,
    refused,
    resubmit,
    running_worker,
    snapshot,
    start_dossier,
    state,
    until,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DESK = "bpmc-xa-xa-tan-lap"


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


TWO_STEPS = [
    {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "1d"},
    {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "4d", "escalate_to": "so-nnmt"},
]


async def test_an_extension_two_working_days_before_the_due_moves_the_appointment_once(env):
    """Mẫu 04: the agency holding the step apologises and gives a new appointment at
    least one working day (here 24 h: continuous calendar) before the due; a dossier
    gets one new appointment (max_extensions, default 1), whichever step asks."""
    snap = snapshot(deadline="6d", steps=TWO_STEPS)
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", DESK)
        s = await until(handle, assigned("tham-dinh"))
        step = s.step("tham-dinh")
        original = step.due_at
        assert step.extendable_until == original - timedelta(days=1)  # one working day (24 h) before the due

        await env.sleep(timedelta(days=2))  # two working days left
        # Only the agency holding the step apologises, it says why, and the due moves forward.
        await refused(extend(handle, "so-tai-chinh", original + timedelta(hours=6), "lý do"), "NotCurrent")
        await refused(extend(handle, "vpdk-tinh", original + timedelta(hours=6), "  "), "ReasonRequired")
        await refused(extend(handle, "vpdk-tinh", original - timedelta(hours=1), "lý do"), "BadExtension")

        new_due = original + timedelta(hours=6)
        s = await extend(handle, "vpdk-tinh", new_due, "chờ ý kiến sở")
        step = s.step("tham-dinh")
        assert (step.due_at, step.original_due_at, step.extensions, s.extensions) == (new_due, original, 1, 1)
        assert step.extendable_until == new_due - timedelta(days=1) and not step.overdue
        assert s.due_at == max(new_due, s.original_due_at)
        assert s.notes[-1].kind == "extended" and "chờ ý kiến sở" in s.notes[-1].text  # for the apology letter

        # A second new appointment, still days before the due: the dossier had its one.
        events = await recorded_events(handle)
        message = await refused(extend(handle, "vpdk-tinh", new_due + timedelta(hours=6), "lần hai"),
                                "ExtensionLimit")
        assert "allows 1 new appointment(s) per dossier" in message
        assert (await state(handle)).step("tham-dinh").due_at == new_due
        assert await recorded_events(handle) == events  # refused before history is written

        # Past the original due but before the new appointment: not escalated yet.
        await env.sleep(original + timedelta(hours=3) - await env.get_current_time())
        assert (await state(handle)).step("tham-dinh").escalations == 0
        # The new appointment passes too: late, escalated.
        await env.sleep(timedelta(hours=4))
        s = await until(handle, lambda s: s.step("tham-dinh").escalations == 1, "escalated after extension")
        done = await complete(handle, "tham-dinh", "vpdk-tinh")
        assert done.step("tham-dinh").verdict == "late"  # judged against the original due


async def test_an_extension_on_the_due_day_or_after_the_due_is_refused(env):
    """Less than one working day before the due is too late for an apology and a new
    appointment, and so is a step already late; the refusal names the last instant."""
    snap = snapshot(deadline="6d", max_extensions=2, steps=TWO_STEPS)
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", DESK)
        step = (await until(handle, assigned("tham-dinh"))).step("tham-dinh")
        due, last = step.due_at, step.extendable_until
        events = await recorded_events(handle)

        await env.sleep(last - await env.get_current_time() + timedelta(minutes=1))  # 23 h 59 m left
        message = await refused(extend(handle, "vpdk-tinh", due + timedelta(days=1), "chờ"), "ExtensionTooLate")
        assert f"at least one working day before the due, i.e. by {last.isoformat()}" in message
        assert f"it is due {due.isoformat()}" in message

        await env.sleep(due - await env.get_current_time() + timedelta(minutes=1))
        s = await until(handle, lambda s: s.step("tham-dinh").overdue, "overdue")
        message = await refused(extend(handle, "vpdk-tinh", due + timedelta(days=1), "chờ", step_id="tham-dinh"),
                                "ExtensionTooLate")
        assert f"its due {due.isoformat()} has passed" in message
        s = await state(handle)
        assert (s.extensions, s.step("tham-dinh").extensions, s.step("tham-dinh").due_at) == (0, 0, due)
        assert [n for n in s.notes if n.kind == "extended"] == []
        assert (await recorded_events(handle))[:len(events)] == events


async def test_the_extension_window_is_counted_in_working_time(private_time_skipping_env):
    """On vn-gov, "one working day before the due" is 8 working hours, not 24 h: a step
    received on Wednesday 2027-03-03 at 09:00 with 3 working days is due Monday
    2027-03-08 09:00; the last moment to extend it is Friday 09:00. On Friday at 08:00
    (9 working hours left) it is extended; a twin dossier asking on Saturday (two
    calendar days before the due, less than one working day) or on the due day is refused."""
    env = private_time_skipping_env
    target = datetime(2027, 3, 3, 9, 0, tzinfo=VN)
    now = await env.get_current_time()
    assert now < target, "the test server's clock is already past March 2027"
    await env.sleep(target - now)
    snap = snapshot(calendar="vn-gov", deadline="5d", steps=[
        {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "3d", "escalate_to": "so-nnmt"}])
    async with running_worker(env.client) as tq:
        first = await start_dossier(env.client, tq, snap)
        twin = await start_dossier(env.client, tq, snap)
        step = (await until(first, assigned("tham-dinh"))).step("tham-dinh")
        await until(twin, assigned("tham-dinh"))
        minute = timedelta(minutes=1)  # the clock was moved to 09:00 give or take the calls' milliseconds
        assert abs(step.due_at - datetime(2027, 3, 8, 9, 0, tzinfo=VN)) < minute
        assert abs(step.extendable_until - datetime(2027, 3, 5, 9, 0, tzinfo=VN)) < minute

        await env.sleep(datetime(2027, 3, 5, 8, 0, tzinfo=VN) - await env.get_current_time())
        appointment = datetime(2027, 3, 10, 16, 0, tzinfo=VN)
        s = await extend(first, "vpdk-tinh", appointment, "chờ kết quả xác minh")
        assert (s.step("tham-dinh").due_at, s.extensions) == (appointment, 1)

        await env.sleep(datetime(2027, 3, 6, 10, 0, tzinfo=VN) - await env.get_current_time())  # Saturday
        message = await refused(extend(twin, "vpdk-tinh", appointment, "chờ"), "ExtensionTooLate")
        assert "by 2027-03-05T09:00" in message
        await env.sleep(datetime(2027, 3, 8, 7, 45, tzinfo=VN) - await env.get_current_time())  # the due day
        await refused(extend(twin, "vpdk-tinh", appointment, "chờ"), "ExtensionTooLate")
        assert (await state(twin)).extensions == 0


async def test_an_extension_is_bounded_and_kept_in_working_time(env):
    """A new appointment is at most `max_extension` of working time past the current due
    (a year-9999 instant is refused before it reaches any write), and one asked outside
    working time moves to the end of that working day, saying so."""
    snap = snapshot(calendar="vn-gov", deadline="5d", max_extension="2d", steps=[
        {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "3d"},
    ])
    # The calendar the workflow computes on: the snapshot its input carries (made now).
    gov = calendar_from_snapshot(load_calendar("vn-gov").snapshot(datetime.now(UTC)))
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap)
        step = (await until(handle, assigned("tham-dinh"))).step("tham-dinh")
        due = step.due_at
        assert due is not None and step.extendable_until == gov.subtract(due, "1d")
        assert await env.get_current_time() <= step.extendable_until  # 3 working days: extendable at once
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


async def test_an_extension_asked_after_hours_on_the_due_day_is_no_later_and_refused(private_time_skipping_env):
    """An appointment asked for 19:00 on a due day that ends at 17:00 becomes 17:00, the
    due itself: refused, not counted as the dossier's one new appointment."""
    env = private_time_skipping_env
    gov = calendar_from_snapshot(load_calendar("vn-gov").snapshot(datetime.now(UTC)))
    day = (await env.get_current_time()).astimezone(gov.timezone).date() + timedelta(days=1)
    while not all(gov.is_working_day(day + timedelta(days=n)) for n in range(3)):
        day += timedelta(days=1)
    opens = gov.periods_on(day)[0][0]  # the first working instant of three working days in a row
    await env.sleep(opens - await env.get_current_time())
    snap = snapshot(calendar="vn-gov", deadline="5d", steps=[{"id": "tham-dinh", "agency": "vpdk-tinh",
                                                                "deadline": "3d"}])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, received_at=opens)
        due = (await until(handle, assigned("tham-dinh"))).step("tham-dinh").due_at
        assert due == gov.periods_on(day + timedelta(days=2))[-1][1]  # the third day's end
        evening = datetime.combine(day + timedelta(days=2), time(19, 0), tzinfo=gov.timezone)
        message = await refused(extend(handle, "vpdk-tinh", evening, "chờ ý kiến sở"), "BadExtension")
        assert "in working time" in message and "is not after" in message
        s = await state(handle)
        assert s.extensions == 0 and s.step("tham-dinh").due_at == due


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
