"""The exporter's gauges for the life cycle of issue 14, on SQLite and PostgreSQL:
financial obligations are open (portal 6), the applicant's turns and how long they
last (5, 6), withdrawals not stopped (7), and online dossiers waiting for a desk (1).

States are written with store.projection as the workflow writes them (the end-to-end
path through the real workflow: test_exporter_follows_the_workflow below)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitoring.collector import NO_DESK, StoreGauges, read_gauges
from store import projection
from tests.monitoring.builders import NOW, dossier, step
from tests.monitoring.test_collector import project
from tests.workflows.harness import assigned, complete, desk, finished, running_worker, snapshot, start_dossier, until
from workflows.payloads import PORTAL_STATUS, DossierState, DossierStatus, Note, PortalStatus

OBLIGATION = DossierStatus.AWAITING_OBLIGATION
SUPPLEMENT = DossierStatus.AWAITING_SUPPLEMENT
DESK = "bpmc-xa-xa-tan-lap"
PROVINCE_DESK = "bpmc-tinh"


def asked(state: DossierState, status: DossierStatus, *ago: timedelta) -> DossierState:
    """``state`` waiting for the applicant (``status``), asked at each of ``ago`` before NOW."""
    kind = "supplement_requested" if status == SUPPLEMENT else "obligation_requested"
    notes = [Note(at=NOW - when, kind=kind, text="x") for when in sorted(ago, reverse=True)]
    return state.model_copy(update={"status": status, "portal_status": PORTAL_STATUS[status], "notes": notes,
                                    "paused_at": NOW - min(ago)})


def submitted(dossier_id: str, desk: str | None, ago: timedelta, calendar: str = "vn-gov") -> DossierState:
    """An online dossier submitted ``ago`` before NOW to ``desk``, not received yet."""
    status = DossierStatus.SUBMITTED
    return dossier(dossier_id, calendar=calendar).model_copy(update={
        "status": status, "portal_status": PORTAL_STATUS[status], "received_at": NOW - ago,
        "submitted_at": NOW - ago, "received_by": desk, "clock_started_at": None, "due_at": None,
        "original_due_at": None})


def test_a_financial_obligation_is_open_and_its_wait_is_measured(store: sessionmaker[Session]) -> None:
    paying = asked(dossier("P", due=-timedelta(days=2)), OBLIGATION, timedelta(days=40), timedelta(days=12))
    late_then_paying = asked(dossier("Q", due=-timedelta(days=3), overdue=True,
                                     steps=[step("thue", "thue-co-so", overdue=True)]), OBLIGATION, timedelta(days=1))
    supplying = asked(dossier("S"), SUPPLEMENT, timedelta(days=2))
    project(store, [paying, late_then_paying, supplying, dossier("A")])
    with store() as session:
        g = read_gauges(session, NOW)
    assert g.open[("G13-TN01", "xa", "awaiting_obligation")] == 2
    assert g.open[("G13-TN01", "xa", "awaiting_supplement")] == 1
    assert g.awaiting_applicant == {**{k: 0 for k in g.awaiting_applicant},
                                    ("G13-TN01", "xa", "obligation"): 2, ("G13-TN01", "xa", "supplement"): 1}
    # Overdue: Q (flagged before the applicant was asked to pay); not P, whose due passed
    # while the applicant held it (the clocks stop).
    assert g.overdue[("G13-TN01", "xa")] == 1
    assert g.procedure_open[("G13-TN01", "1.012756")] == 4
    # The wait runs from the latest request (P was asked again 12 days ago).
    assert g.applicant_wait_oldest[("G13-TN01", "obligation")] == timedelta(days=12).total_seconds()
    assert g.applicant_wait_oldest[("G13-TN01", "supplement")] == timedelta(days=2).total_seconds()
    assert g.applicant_wait_oldest[("G15-TP07", "obligation")] == 0  # every sector, at 0
    assert g.awaiting_supplement["G13-TN01"] == 1  # the older family still counts supplements only

    # Paid: the dossier is processing again and leaves the applicant's families.
    paid = paying.model_copy(update={"status": DossierStatus.PROCESSING, "portal_status": 4, "paused_at": None})
    with store.begin() as session:
        projection.apply_state(session, paid, 2, now=NOW)
    with store() as session:
        g = read_gauges(session, NOW)
    assert g.awaiting_applicant[("G13-TN01", "xa", "obligation")] == 1
    assert g.applicant_wait_oldest[("G13-TN01", "obligation")] == timedelta(days=1).total_seconds()
    assert g.overdue[("G13-TN01", "xa")] == 2  # P's due passed and it is processing again


def test_online_dossiers_waiting_for_receipt_by_desk(store: sessionmaker[Session]) -> None:
    # NOW is Tuesday 2026-03-10 10:00 in Vietnam; vn-gov works 07:30-11:30 and 13:00-17:00.
    monday_4pm = timedelta(hours=18)  # submitted Monday 16:00: 1 h that day + 2.5 h this morning
    project(store, [
        submitted("O1", DESK, monday_4pm),
        submitted("O2", DESK, timedelta(minutes=30)),
        submitted("O3", PROVINCE_DESK, timedelta(hours=2), calendar="continuous"),  # every hour counts
        submitted("O4", None, timedelta(hours=1)),  # addressed to no desk
        dossier("A", steps=[step("tiep-nhan", DESK)]),  # received: not waiting
    ])
    with store() as session:
        g = read_gauges(session, NOW)
    assert g.awaiting_receipt[DESK] == 2 and g.awaiting_receipt[PROVINCE_DESK] == 1
    assert g.awaiting_receipt[NO_DESK] == 1
    assert g.awaiting_receipt["bpmc-xa-xa-an-phu"] == 0  # every desk of the registry, at 0
    assert "vpdk-tinh" not in g.awaiting_receipt  # not a desk
    assert g.receipt_wait_oldest[DESK] == monday_4pm.total_seconds()
    assert g.receipt_wait_oldest_working[DESK] == timedelta(hours=3, minutes=30).total_seconds()
    assert g.receipt_wait_oldest_working[PROVINCE_DESK] == g.receipt_wait_oldest[PROVINCE_DESK] == 7200
    # Not an open dossier: no open, overdue or procedure count yet.
    assert g.procedure_open == {("G13-TN01", "1.012756"): 1}

    # Received: it leaves the desk's queue; the next oldest is what is left.
    received = dossier("O1", steps=[step("tiep-nhan", DESK)]).model_copy(update={"received_by": DESK})
    with store.begin() as session:
        projection.apply_state(session, received, 2, now=NOW)
    with store() as session:
        g = read_gauges(session, NOW)
    assert g.awaiting_receipt[DESK] == 1
    assert g.receipt_wait_oldest[DESK] == g.receipt_wait_oldest_working[DESK] == 1800


def test_a_calendar_that_cannot_be_loaded_counts_wall_clock_time(store: sessionmaker[Session]) -> None:
    project(store, [submitted("O1", DESK, timedelta(hours=18), calendar="da-xoa")])
    with store() as session:
        g = read_gauges(session, NOW)
    assert g.receipt_wait_oldest_working[DESK] == g.receipt_wait_oldest[DESK] == timedelta(hours=18).total_seconds()


def test_withdrawals_show_status_7_only_until_they_stop(store: sessionmaker[Session]) -> None:
    requested = dossier("W").model_copy(update={"portal_status": PortalStatus.WITHDRAWAL_REQUESTED})
    stopped = dossier("X").model_copy(update={"status": DossierStatus.WITHDRAWN,
                                              "portal_status": PortalStatus.STOPPED, "completed_at": NOW})
    project(store, [requested, stopped, dossier("H", sector="G15-TP07", procedure="3.000722")])
    with store() as session:
        g = read_gauges(session, NOW)
    assert g.withdrawal_requested["G13-TN01"] == 1 and g.withdrawal_requested["G15-TP07"] == 0
    assert g.open[("G13-TN01", "xa", "processing")] == 1  # W; X is finished


# --------------------------------------------------------------------------- through the real workflow


async def gauges_when(sessions: sessionmaker[Session], now: datetime, holds: Callable[[StoreGauges], bool],
                      what: str) -> StoreGauges:
    """Read the gauges as of ``now`` until ``holds`` (the store write follows the
    workflow's answer; this waits for it, it does not time it)."""
    for _ in range(200):
        with sessions() as session:
            g = read_gauges(session, now)
        if holds(g):
            return g
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} never held: {g}")


async def test_exporter_follows_the_workflow(store: sessionmaker[Session], time_skipping_env) -> None:
    """An online dossier waits for its desk (1), is received (4), the tax office asks the
    applicant to pay (6), and the applicant withdraws (7, then stopped: 8); the gauges
    follow the projection the worker writes."""
    env = time_skipping_env
    snap = snapshot(deadline="5d", steps=[
        {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "1d"},
        {"id": "xac-dinh-thue", "agency": "thue-co-so", "deadline": "2d"},
        {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "1d"},
    ])
    async with running_worker(env.client, store) as tq:
        handle = await start_dossier(env.client, tq, snap, channel="online", received_by=DESK)
        s = await until(handle, lambda s: s.status == "submitted", "submitted")
        assert s.submitted_at is not None
        later = s.submitted_at + timedelta(hours=2)  # continuous calendar: every hour is working time
        g = await gauges_when(store, later, lambda g: g.awaiting_receipt[DESK] == 1, "waiting for receipt")
        assert g.receipt_wait_oldest[DESK] == g.receipt_wait_oldest_working[DESK] == 7200
        assert sum(g.open.values()) == 0

        await desk(handle, "receive", DESK)
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", DESK)
        await until(handle, assigned("xac-dinh-thue"))
        s = await complete(handle, "xac-dinh-thue", "thue-co-so", "obligation", note="Lệ phí trước bạ 2.400.000 đ")
        asked_at = s.notes[-1].at
        g = await gauges_when(store, asked_at + timedelta(days=3),
                              lambda g: g.awaiting_applicant[("G13-TN01", "xa", "obligation")] == 1, "obligation")
        assert g.awaiting_receipt[DESK] == 0
        assert g.open[("G13-TN01", "xa", "awaiting_obligation")] == 1
        assert g.applicant_wait_oldest[("G13-TN01", "obligation")] == timedelta(days=3).total_seconds()

        await desk(handle, "withdraw", DESK, note="Người nộp rút hồ sơ ngày 10/3")
        s = await finished(handle)
        assert s.status == "withdrawn"
        g = await gauges_when(store, asked_at + timedelta(days=3),
                              lambda g: g.awaiting_applicant[("G13-TN01", "xa", "obligation")] == 0, "stopped")
        assert g.withdrawal_requested["G13-TN01"] == 0  # 7 then 8 in one write: never seen waiting
        assert sum(g.open.values()) == 0 and g.applicant_wait_oldest[("G13-TN01", "obligation")] == 0
