"""The legal life cycle of a dossier (issue 14) on the time-skipping test server:
online receipt, refusal at the desk, withdrawal, returns to an earlier step,
financial obligations, status 9 then 10, and Decision 766's verdicts.

Procedures use the `continuous` calendar (1d = 24 h) unless the test is about
working time, so expected instants are plain arithmetic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from definitions.calendar import calendar_from_snapshot, load_calendar
from tests.workflows.harness import (
    assigned,
    audit_log,
    complete,
    desk,
    finished,
    refused,
    resubmit,
    running_worker,
    send_back,
    snapshot,
    start_dossier,
    state,
    until,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DESK = "bpmc-xa-xa-tan-lap"
OTHER_DESK = "bpmc-xa-xa-dong-son"

# tiếp nhận -> thẩm định -> phê duyệt (may send back to thẩm định) -> trả kết quả at the desk
REVIEWED = [
    {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "1d"},
    {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "2d"},
    {"id": "phe-duyet", "agency": "so-nnmt", "deadline": "1d", "returns_to": ["tham-dinh", "tiep-nhan"]},
    {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "1d", "returns_result": True},
]


async def test_online_dossier_waits_for_receipt_and_its_clock_starts_then(env):
    snap = snapshot(deadline="3d")
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, channel="online", received_by=DESK)
        s = await until(handle, lambda s: s.status == "submitted", "submitted")
        assert s.portal_status == 1 and s.due_at is None and s.clock_started_at is None
        assert all(st.status == "pending" for st in s.steps)
        submitted_at = s.submitted_at
        assert submitted_at is not None

        await env.sleep(timedelta(hours=5))  # no clock runs before receipt
        s = await state(handle)
        assert s.status == "submitted" and not s.overdue

        assert "submitted to desk bpmc-xa-xa-tan-lap" in await refused(desk(handle, "receive", OTHER_DESK), "WrongAgency")
        s = await desk(handle, "receive", DESK, note="đủ thành phần")
        s = await until(handle, assigned("tiep-nhan"))
        assert s.status == "processing" and s.portal_status == 4
        assert s.received_by == DESK
        assert s.received_at >= submitted_at + timedelta(hours=5)
        assert s.clock_started_at == s.received_at and s.due_at == s.received_at + timedelta(days=3)
        assert s.step("tiep-nhan").assigned_at == s.received_at
        assert "was already received" in await refused(desk(handle, "receive", DESK), "AlreadyReceived")
        assert "was already received" in await refused(desk(handle, "refuse_receipt", DESK, "thiếu"),
                                                       "AlreadyReceived")
        assert (await audit_log(tq, handle))[:3] == [("submitted", 1), ("received", 2), ("step_assigned", 4)]


async def test_refusal_before_receipt_ends_the_dossier_unreceived(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snapshot(), channel="online", received_by=DESK)
        await until(handle, lambda s: s.status == "submitted", "submitted")
        assert "needs a note" in await refused(desk(handle, "refuse_receipt", DESK, "  "), "NoteRequired")
        assert "not received yet" in await refused(desk(handle, "withdraw", DESK, "rút"), "NotReceived")
        await desk(handle, "refuse_receipt", DESK, note="Thủ tục không thuộc thẩm quyền của xã")
        s = await finished(handle)
        assert s.status == "not_received" and s.portal_status == 3
        assert s.verdict is None and s.clock_started_at is None  # never received: in no on-time figure
        assert s.notes[-1].kind == "not_received" and "thẩm quyền" in s.notes[-1].text
        assert await audit_log(tq, handle) == [("submitted", 1), ("not_received", 3)]


async def test_an_in_person_dossier_can_be_checked_before_receipt(env):
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snapshot(), channel="in_person", received_by=DESK,
                                     await_receipt=True)
        s = await until(handle, lambda s: s.status == "submitted", "submitted")
        assert s.portal_status == 1
        await desk(handle, "receive", DESK)
        s = await until(handle, assigned("tiep-nhan"))
        assert s.portal_status == 4


async def test_withdrawal_stops_the_dossier_and_empties_the_inboxes(env):
    snap = snapshot(deadline="5d", steps=REVIEWED)
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, received_by=DESK)
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", DESK)
        await until(handle, assigned("tham-dinh"))
        assert "neither received" in await refused(desk(handle, "withdraw", "so-tai-chinh", "rút"), "WrongAgency")
        s = await desk(handle, "withdraw", DESK, note="Đơn xin rút hồ sơ ngày 01/12")
        s = await finished(handle)
        assert s.status == "withdrawn" and s.portal_status == 8
        assert s.step("tham-dinh").status == "skipped"  # taken back from vpdk-tinh's inbox
        assert s.verdict in ("early", "on_time")  # judged at the stop, against the appointment
        assert (await audit_log(tq, handle))[-2:] == [("withdrawal_requested", 7), ("withdrawn", 8)]


async def test_status_9_then_10_and_withdrawal_refused_after_the_decision(env):
    snap = snapshot(deadline="5d", steps=REVIEWED)
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, received_by=DESK)
        for step_id, agency in (("tiep-nhan", DESK), ("tham-dinh", "vpdk-tinh"), ("phe-duyet", "so-nnmt")):
            await until(handle, assigned(step_id))
            await complete(handle, step_id, agency)
        s = await until(handle, assigned("tra-ket-qua"))
        assert s.status == "result_ready" and s.portal_status == 9
        assert s.finished_at is not None and s.verdict in ("early", "on_time")
        judged = s.verdict
        assert "already decided" in await refused(desk(handle, "withdraw", DESK, "rút"), "DecisionMade")
        assert "only outcome approved" in await refused(
            complete(handle, "tra-ket-qua", DESK, "rejected", note="x"), "DecisionMade")

        # The applicant collects the result long after the appointment: the verdict stands.
        await env.sleep(timedelta(days=10))
        s = await state(handle)
        assert not s.overdue and s.verdict == judged
        await complete(handle, "tra-ket-qua", DESK)
        s = await finished(handle)
        assert s.status == "completed" and s.portal_status == 10 and s.verdict == judged
        assert s.completed_at is not None and s.completed_at - s.finished_at >= timedelta(days=10)
        statuses = [portal for _, portal in await audit_log(tq, handle) if portal is not None]
        assert statuses == [2, 4, 9, 10]


async def test_a_return_to_an_earlier_step_runs_it_again_and_the_legal_due_stays(env):
    snap = snapshot(deadline="6d", max_returns=1, steps=REVIEWED)
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, received_by=DESK)
        for step_id, agency in (("tiep-nhan", DESK), ("tham-dinh", "vpdk-tinh")):
            await until(handle, assigned(step_id))
            await complete(handle, step_id, agency)
        s = await until(handle, assigned("phe-duyet"))
        legal_due = s.original_due_at
        first_pass = s.step("tham-dinh")

        assert "may return dossier" in await refused(send_back(handle, "phe-duyet", "so-nnmt", "tra-ket-qua"),
                                                     "BadReturn")
        assert "belongs to so-nnmt" in await refused(send_back(handle, "phe-duyet", "vpdk-tinh", "tham-dinh"),
                                                     "WrongAgency")
        assert "not current" in await refused(send_back(handle, "tham-dinh", "vpdk-tinh", "tiep-nhan"), "NotCurrent")

        await env.sleep(timedelta(hours=3))
        await send_back(handle, "phe-duyet", "so-nnmt", "tham-dinh", note="Chưa đạt: thiếu trích đo")
        s = await until(handle, assigned("tham-dinh"))
        again = s.step("tham-dinh")
        assert again.assigned_at > first_pass.completed_at  # handed over again, now
        assert again.due_at == again.assigned_at + timedelta(days=2)  # a new due by its own deadline
        assert s.step("phe-duyet").status == "pending"
        assert s.original_due_at == legal_due  # returns are the agencies' time
        assert s.return_count == 1
        assert [(p.id, p.status) for p in s.earlier_passes] == [("tham-dinh", "completed"), ("phe-duyet", "returned")]
        assert s.notes[-1].kind == "returned" and "tham-dinh" in s.notes[-1].text

        await complete(handle, "tham-dinh", "vpdk-tinh")
        await until(handle, assigned("phe-duyet"))
        assert "allows 1" in await refused(send_back(handle, "phe-duyet", "so-nnmt", "tham-dinh"), "ReturnLimit")
        await complete(handle, "phe-duyet", "so-nnmt")
        await until(handle, assigned("tra-ket-qua"))
        await complete(handle, "tra-ket-qua", DESK)
        s = await finished(handle)
        assert s.status == "completed" and s.original_due_at == legal_due
        assert ("step_returned", None) in await audit_log(tq, handle)


async def test_an_obligation_stops_the_clocks_until_it_is_paid(env):
    snap = snapshot(deadline="5d", steps=[{"id": "xac-dinh-thue", "agency": "cuc-thue", "deadline": "2d"},
                                          {"id": "cap-giay", "agency": "vpdk-tinh", "deadline": "1d"}])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, received_by=DESK)
        s = await until(handle, assigned("xac-dinh-thue"))
        assert "the amount" in await refused(complete(handle, "xac-dinh-thue", "cuc-thue", "obligation"),
                                             "NoteRequired")
        await env.sleep(timedelta(hours=10))
        before = await state(handle)
        await complete(handle, "xac-dinh-thue", "cuc-thue", "obligation", note="Lệ phí trước bạ 2.400.000 đ")
        s = await state(handle)
        assert s.status == "awaiting_obligation" and s.portal_status == 6 and s.obligation_count == 1
        assert "financial obligation" in await refused(
            complete(handle, "xac-dinh-thue", "cuc-thue"), "AwaitingObligation")

        await env.sleep(timedelta(days=7))  # the applicant pays a week later: not the agencies' time
        s = await state(handle)
        assert not s.overdue and not s.step("xac-dinh-thue").overdue
        s = await resubmit(handle, note="Đã nộp theo biên lai số 0012", agency=DESK)
        assert s.status == "processing" and s.portal_status == 4
        paused = s.notes[-1].at - s.notes[-2].at
        assert s.original_due_at == before.original_due_at + paused
        assert s.step("xac-dinh-thue").due_at == before.step("xac-dinh-thue").due_at + paused
        await complete(handle, "xac-dinh-thue", "cuc-thue")
        await until(handle, assigned("cap-giay"))
        await complete(handle, "cap-giay", "vpdk-tinh")
        s = await finished(handle)
        assert s.status == "completed" and s.verdict in ("early", "on_time")


async def test_an_obligation_pause_across_tet_2027_resumes_with_the_working_time_left(private_time_skipping_env):
    """Asked to pay on Tuesday 2027-02-02 10:00 (before Tết 2027, 4–10 Feb off), paid on
    Friday 2027-02-12 10:00: the step had 2 working days less the time since receipt;
    that rest counts again from the payment, across no holiday it did not already skip."""
    env = private_time_skipping_env
    target = datetime(2027, 2, 1, 9, 0, tzinfo=VN)
    now = await env.get_current_time()
    assert now < target, "the test server's clock is already past Tết 2027"
    await env.sleep(target - now)
    snap = snapshot(calendar="vn-gov", deadline="10d",
                    steps=[{"id": "xac-dinh-thue", "agency": "cuc-thue", "deadline": "3d"}])
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, received_by=DESK)
        s = await until(handle, assigned("xac-dinh-thue"))
        await env.sleep(datetime(2027, 2, 2, 10, 0, tzinfo=VN) - await env.get_current_time())
        before = await state(handle)
        await complete(handle, "xac-dinh-thue", "cuc-thue", "obligation", note="Tiền sử dụng đất")
        paused = await state(handle)
        await env.sleep(datetime(2027, 2, 12, 10, 0, tzinfo=VN) - await env.get_current_time())
        s = await resubmit(handle, note="đã nộp", agency=DESK)

        cal = calendar_from_snapshot(load_calendar("vn-gov").snapshot(datetime.now(UTC)))  # as the harness
        paused_at, resumed_at = paused.paused_at, s.notes[-1].at
        assert paused_at is not None
        left = cal.elapsed(paused_at, before.step("xac-dinh-thue").due_at)
        assert left > timedelta(0)
        # The rest of the step's working time, counted again from the payment.
        assert s.step("xac-dinh-thue").due_at == cal.add(cal.start_of_clock(resumed_at), left)
        # The due moved by the pause's working time only: Tết (4–10 Feb) inside the pause counted for nothing.
        moved = cal.elapsed(before.step("xac-dinh-thue").due_at, s.step("xac-dinh-thue").due_at)
        assert moved == cal.elapsed(paused_at, resumed_at) < resumed_at - paused_at - timedelta(days=7)


async def test_a_dossier_that_ends_waiting_for_a_second_supplement_is_late(env):
    """Decision 766: "more than one supplement request counts as late" is written for a
    dossier that ends with only supplement requests (no finished or returned status)."""
    snap = snapshot(deadline="5d", steps=[{"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "3d"}])
    async with running_worker(env.client) as tq:
        # Asked twice, then done in time: judged on time like any other.
        handle = await start_dossier(env.client, tq, snap, received_by=DESK)
        await until(handle, assigned("tham-dinh"))
        for round_ in ("lần 1", "lần 2"):
            await complete(handle, "tham-dinh", "vpdk-tinh", "supplement", note=round_)
            await resubmit(handle)
        await complete(handle, "tham-dinh", "vpdk-tinh")
        s = await finished(handle)
        assert s.supplement_count == 2 and s.verdict in ("early", "on_time")

        # Asked twice, and withdrawn while waiting for the second supplement: late.
        handle = await start_dossier(env.client, tq, snap, received_by=DESK)
        await until(handle, assigned("tham-dinh"))
        await complete(handle, "tham-dinh", "vpdk-tinh", "supplement", note="lần 1")
        await resubmit(handle)
        await complete(handle, "tham-dinh", "vpdk-tinh", "supplement", note="lần 2")
        await desk(handle, "withdraw", DESK, note="người nộp không bổ sung được, xin rút")
        s = await finished(handle)
        assert s.status == "withdrawn" and s.verdict == "late"


async def test_the_result_is_returned_at_the_receiving_desk(env):
    """Received at another commune's desk (Art. 14): that desk returns the result."""
    snap = snapshot(deadline="5d", steps=REVIEWED)
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, received_by=OTHER_DESK)
        s = await until(handle, assigned("tiep-nhan"))
        assert s.received_by == OTHER_DESK and s.step("tiep-nhan").agency == DESK  # the competent commune
        for step_id, agency in (("tiep-nhan", DESK), ("tham-dinh", "vpdk-tinh"), ("phe-duyet", "so-nnmt")):
            await until(handle, assigned(step_id))
            await complete(handle, step_id, agency)
        s = await until(handle, assigned("tra-ket-qua"))
        assert s.step("tra-ket-qua").agency == OTHER_DESK


@pytest.mark.parametrize("received, starts", [
    # Decree 63/2024 Art. 7(2): received *after* 15:00 -> counted from the next working day.
    ((15, 0, 0), datetime(2026, 3, 2, 15, 0, tzinfo=VN)),
    ((15, 1, 0), datetime(2026, 3, 3, 7, 30, tzinfo=VN)),
])
async def test_the_procedures_receipt_cut_off_is_after_15_00(env, received, starts):
    snap = snapshot(calendar="vn-gov", deadline="5d", receipt_cutoff="15:00",
                    steps=[{"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "1d"}])
    at = datetime(2026, 3, 2, *received, tzinfo=VN)  # a Monday
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, received_at=at, received_by=DESK)
        s = await until(handle, assigned("tiep-nhan"))
        assert s.received_at == at and s.clock_started_at == starts
        # Without the procedure's cut-off (vn-gov has none), the same receipt starts at once.
        plain = await start_dossier(env.client, tq, snapshot(calendar="vn-gov", deadline="5d", steps=snap.procedure
                                                             .model_dump(mode="json")["steps"]),
                                    received_at=at, received_by=DESK)
        assert (await until(plain, assigned("tiep-nhan"))).clock_started_at == at
