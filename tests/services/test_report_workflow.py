"""Biểu 06 reconciles with what really happened: a known mix of dossiers driven through
the real DossierWorkflow on the time-skipping test server (back-dated receipts, steps
left to go late, supplements, a withdrawal, a refusal at the desk, online, in-person and
postal channels, two sectors, two levels), then every cell of the report checked, and
its in-progress columns compared with the exporter's gauges read from the same store at
the same instant. Runs on SQLite and PostgreSQL.

Procedures use the `continuous` calendar (1d = 24 h); the period's day boundaries are
local midnights (Asia/Ho_Chi_Minh), so the mix is placed relative to them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitoring.collector import read_gauges
from services.report import Report, ReportOptions, Rules, build_report
from store.projection import last_seq
from tests.workflows.harness import (
    assigned,
    complete,
    desk,
    extend,
    resubmit,
    running_worker,
    snapshot,
    start_dossier,
    state,
    until,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
DESK = "bpmc-xa-xa-tan-lap"
DAT_DAI, HO_TICH = "G13-TN01", "G15-TP07"
STEPS = (("tiep-nhan", DESK), ("tham-dinh", "vpdk-tinh"), ("tra-ket-qua", DESK))


def procedure(code: str, sector: str, level: str, deadline: str = "10d") -> Any:
    return snapshot(code=code, sector=sector, level=level, deadline=deadline)


XA_DAT_DAI = procedure("T.R01", DAT_DAI, "xa")
XA_HO_TICH = procedure("T.R02", HO_TICH, "xa")
TINH_DAT_DAI = procedure("T.R03", DAT_DAI, "tinh")
TINH_DAT_DAI_1D = procedure("T.R04", DAT_DAI, "tinh", "1d")
TINH_DAT_DAI_2D = procedure("T.R05", DAT_DAI, "tinh", "2d")
TINH_HO_TICH = procedure("T.R06", HO_TICH, "tinh")
TINH_HO_TICH_1D = procedure("T.R07", HO_TICH, "tinh", "1d")


@pytest.fixture
def env(private_time_skipping_env):  # type: ignore[no-untyped-def]
    return private_time_skipping_env  # the clock moves days ahead


async def finish_all(handle: Any) -> None:
    for step_id, agency in STEPS:
        await until(handle, assigned(step_id), f"{step_id} assigned")
        await complete(handle, step_id, agency)


async def settled(sessions: sessionmaker[Session], handles: list[Any]) -> None:
    """Every change the workflows made is in the store (writes follow the answers)."""
    for handle in handles:
        for _ in range(400):
            wanted = (await state(handle)).last_event_seq
            with sessions() as session:
                if last_seq(session, handle.id) == wanted:
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{handle.id}: the store never caught up")


def cells(made: Report) -> dict[tuple[str, str], tuple[int, ...]]:
    return {(row.level or "", row.code or ""): row.figures() for row in made.rows if row.kind == "sector"}


async def test_every_cell_and_the_gauges_at_the_same_instant(env, deployed_sessions) -> None:  # type: ignore[no-untyped-def]
    sessions = deployed_sessions
    t0 = await env.get_current_time()
    first_day = t0.astimezone(HCM).date() + timedelta(days=2)
    last_day = first_day + timedelta(days=2)
    start = datetime.combine(first_day, time(0), HCM).astimezone(UTC)  # S: the period's first instant
    end = start + timedelta(days=3)  # E: the instant after its last day

    async def sleep_until(at: datetime) -> None:
        await env.sleep(at - await env.get_current_time())

    async with running_worker(env.client, sessions) as tq:
        def begin(snap: Any, **fields: Any) -> Any:
            return start_dossier(env.client, tq, snap, received_by=DESK, **fields)

        # Before the period: X0 resolved at once (in no column), X1 received (carried over),
        # X2 submitted online and waiting for a desk.
        x0 = await begin(XA_DAT_DAI)
        await finish_all(x0)
        x1 = await begin(XA_DAT_DAI)
        x2 = await begin(XA_DAT_DAI, channel="online")
        await until(x2, lambda s: s.status == "submitted", "x2 submitted")

        await sleep_until(start + timedelta(hours=1))
        await desk(x2, "receive", DESK)  # received online in the period
        x3 = await begin(XA_DAT_DAI, received_at=start - timedelta(hours=2))  # back-dated before it: carried over
        x4 = await begin(TINH_DAT_DAI_1D, channel="postal")  # left to go late
        x5 = await begin(TINH_HO_TICH)  # waits for a supplement at the end, in time
        x6 = await begin(XA_HO_TICH)  # withdrawn
        x7 = await begin(XA_HO_TICH, channel="online")  # refused at the desk
        x8 = await begin(XA_HO_TICH, channel="online")  # never received
        x9 = await begin(TINH_DAT_DAI_2D)  # resolved late
        x10 = await begin(TINH_HO_TICH)  # a supplement, then resolved early
        x11 = await begin(TINH_DAT_DAI_1D)  # resolved on its due day: on time
        x12 = await begin(TINH_HO_TICH_1D)  # late, then waits for a supplement
        for handle in (x5, x10):
            await until(handle, assigned("tiep-nhan"))
            await complete(handle, "tiep-nhan", DESK, outcome="supplement", note="Thiếu bản sao")
        await until(x6, assigned("tiep-nhan"))
        await desk(x6, "withdraw", DESK, note="Đơn xin rút hồ sơ")
        await until(x7, lambda s: s.status == "submitted")
        await desk(x7, "refuse_receipt", DESK, note="Không thuộc thẩm quyền")

        await sleep_until(start + timedelta(hours=4))
        await finish_all(x1)
        await resubmit(x10, note="Đã bổ sung")
        await finish_all(x10)

        await sleep_until(start + timedelta(hours=24, minutes=30))  # x11's due day, before its due
        await finish_all(x11)

        await sleep_until(start + timedelta(hours=30))  # x4's and x12's dues passed at S + 25 h
        await until(x12, lambda s: s.overdue, "x12 overdue")
        await complete(x12, "tiep-nhan", DESK, outcome="supplement", note="Thiếu giấy tờ")

        await sleep_until(start + timedelta(hours=60))  # x9's due passed at S + 49 h
        await finish_all(x9)

        await sleep_until(end + timedelta(hours=1))
        x3b = await begin(XA_DAT_DAI, received_at=end - timedelta(hours=2))  # back-dated into the period
        await until(x3b, assigned("tiep-nhan"))
        handles = [x0, x1, x2, x3, x3b, x4, x5, x6, x7, x8, x9, x10, x11, x12]
        await settled(sessions, handles)
        finals = {h.id: await state(h) for h in handles}
        assert finals[x0.id].finished_at is not None and finals[x0.id].finished_at < start
        assert [finals[h.id].verdict for h in (x1, x6, x9, x10, x11)] == ["early", "early", "late", "early",
                                                                           "on_time"]
        assert [finals[h.id].status for h in (x5, x7, x8, x12)] == ["awaiting_supplement", "not_received",
                                                                     "submitted", "awaiting_supplement"]
        assert finals[x3.id].received_at == start - timedelta(hours=2)

        now = await env.get_current_time()
        with sessions() as session:
            made = build_report(session, first_day, last_day, "level", now=now)
            withdrawn = build_report(session, first_day, last_day, "level", now=now,
                                     options=ReportOptions(rules=Rules(withdrawn_on_time=True)))
            paused = build_report(session, first_day, last_day, "level", now=now,
                                  options=ReportOptions(rules=Rules(paused_within_time=True)))
            so_far = build_report(session, first_day, now.astimezone(HCM).date(), "level", now=now)
            gauges = read_gauges(session, now)

    # (3) received, (4) online, (5) in person + postal, (6) carried over; (7) resolved, (8) early,
    # (9) on time, (10) late; (11) in progress, (12) within time, (13) overdue.
    expected = {
        ("xa", DAT_DAI): (4, 1, 1, 2, 1, 1, 0, 0, 3, 3, 0),  # x1 carried, resolved; x2 online; x3 carried; x3b
        ("xa", HO_TICH): (1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0),  # x6 withdrawn; x7 refused and x8 unreceived: nowhere
        ("tinh", DAT_DAI): (3, 0, 3, 0, 2, 0, 1, 1, 1, 0, 1),  # x4 postal, overdue; x9 late; x11 on time
        ("tinh", HO_TICH): (3, 0, 3, 0, 1, 1, 0, 0, 2, 1, 1),  # x5 paused in time; x10 early; x12 paused, late
    }
    assert made.complete and cells(made) == expected
    assert [(row.kind, row.code) for row in made.rows] == [
        ("total", None), ("level", "tinh"), ("sector", DAT_DAI), ("sector", HO_TICH),
        ("level", "xa"), ("sector", DAT_DAI), ("sector", HO_TICH)]
    assert made.total.figures() == (11, 1, 8, 2, 5, 3, 1, 1, 6, 4, 2)
    assert cells(withdrawn)[("xa", HO_TICH)] == (1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0)
    assert cells(paused)[("tinh", HO_TICH)] == (3, 0, 3, 0, 1, 1, 0, 0, 2, 2, 0)

    # The in-progress columns at `now` and the exporter's gauges read at `now` on the same store.
    assert not so_far.complete and so_far.ends_at == now
    assert sum(gauges.open.values()) == so_far.total.in_progress_total == 6
    assert sum(gauges.overdue.values()) == so_far.total.in_progress_overdue == 2
    for (level, sector), figures in cells(so_far).items():
        held = sum(n for (s, lv, _), n in gauges.open.items() if (s, lv) == (sector, level))
        assert (figures[8], figures[10]) == (held, gauges.overdue.get((sector, level), 0)), (level, sector)


async def test_a_new_appointment_does_not_make_a_late_dossier_on_time(env, deployed_sessions) -> None:  # type: ignore[no-untyped-def]
    """Where the report and the exporter differ, on purpose: a dossier given a new
    appointment (Mẫu 04) before its legal due is overdue for Biểu 06 once the legal due
    passes, as its verdict will be late; the exporter's gauge follows the appointment
    (its alerts are about dossiers past what the applicant was told)."""
    sessions = deployed_sessions
    one_step = snapshot(code="T.R08", sector=DAT_DAI, level="xa", deadline="2d",
                        steps=[{"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "2d"}])
    async with running_worker(env.client, sessions) as tq:
        handle = await start_dossier(env.client, tq, one_step, received_by=DESK)
        received = (await until(handle, assigned("tiep-nhan"))).received_at
        await env.sleep(timedelta(hours=12))  # more than a working day before the due: allowed
        await extend(handle, DESK, received + timedelta(days=2, hours=12), "Chờ kết quả xác minh")
        await env.sleep(timedelta(hours=37))  # past the legal due, before the new appointment
        await settled(sessions, [handle])
        now = await env.get_current_time()
        with sessions() as session:
            today = now.astimezone(HCM).date()
            made = build_report(session, today - timedelta(days=3), today, "sector", now=now)
            gauges = read_gauges(session, now)
        assert made.total.figures()[8:] == (1, 0, 1)
        assert sum(gauges.open.values()) == 1 and sum(gauges.overdue.values()) == 0
        await complete(handle, "tiep-nhan", DESK)
        assert (await until(handle, lambda s: s.verdict is not None, "judged")).verdict == "late"
