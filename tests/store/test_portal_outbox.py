"""The National Portal's outbox as the store writes and reads it (store/portal_outbox.py),
on both databases: rows written with the audit log in one transaction, idempotent with
it, and claimed one dossier's oldest change at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from activities.portal_payload import PortalPayload
from store import portal_outbox, projection
from store.models import PortalOutboxRow
from tests.store.builders import PORTAL_JOURNEY_ROWS, T0, make_state, make_write, portal_journey
from workflows.payloads import DossierEvent, StoreWrite

ADAPTER = PortalPayload()
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def write(sessions: sessionmaker[Session], change: StoreWrite, *, portal: bool = True,
          now: datetime = NOW) -> None:
    with sessions.begin() as session:
        projection.write_changes(session, change, portal=ADAPTER if portal else None, now=now)


def rows(sessions: sessionmaker[Session], dossier_id: str = "HS-2026-000001") -> list[tuple[int, str, int]]:
    with sessions() as session:
        return [(r.seq, r.kind, r.portal_status) for r in portal_outbox.list_rows(session, dossier_id)]


def claimed(sessions: sessionmaker[Session], limit: int = 100) -> list[tuple[str, int]]:
    with sessions() as session:
        return [(c.dossier_id, c.seq) for c in portal_outbox.claim(session, limit)]


def deliver(sessions: sessionmaker[Session], dossier_id: str, seq: int) -> None:
    with sessions.begin() as session:
        row = session.scalars(select(PortalOutboxRow).where(PortalOutboxRow.dossier_id == dossier_id,
                                                            PortalOutboxRow.seq == seq)).one()
        portal_outbox.mark_delivered(session, row.id, NOW, ADAPTER.without_person_data(row.payload))


def park(sessions: sessionmaker[Session], dossier_id: str, seq: int) -> None:
    with sessions.begin() as session:
        row_id = session.scalar(select(PortalOutboxRow.id).where(PortalOutboxRow.dossier_id == dossier_id,
                                                                 PortalOutboxRow.seq == seq))
        assert row_id is not None
        portal_outbox.park(session, row_id, NOW, "HTTP 422: MaTTHC không tồn tại")


def test_each_status_change_and_timeline_step_is_queued_with_the_status_after_it(sessions):
    for change in portal_journey():
        write(sessions, change)
    assert rows(sessions) == PORTAL_JOURNEY_ROWS


def test_nothing_is_queued_while_the_sync_is_off(sessions):
    for change in portal_journey():
        write(sessions, change, portal=False)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(PortalOutboxRow)) == 0
        assert len(projection.list_events(session, "HS-2026-000001")) == 10  # the rest of the write happened


def test_a_repeated_write_queues_nothing_twice(sessions):
    journey = portal_journey()
    for change in journey:
        write(sessions, change)
    for change in journey:  # retried local activities, and a late retry after later writes
        write(sessions, change, now=NOW + timedelta(minutes=5))
    assert rows(sessions) == PORTAL_JOURNEY_ROWS
    with sessions() as session:
        assert {r.created_at for r in portal_outbox.list_rows(session, "HS-2026-000001")} == {NOW}


def test_a_re_run_transition_replaces_what_waits_but_not_what_was_delivered(sessions):
    first, second, *_ = portal_journey()
    write(sessions, first)
    write(sessions, second)
    deliver(sessions, "HS-2026-000001", 1)
    # The workflow re-ran the transitions of seqs 1-2 and 3-5 after a worker died: later times.
    rerun = [change.model_copy(update={"events": [e.model_copy(update={"at": e.at + timedelta(minutes=1)})
                                                   for e in change.events]}) for change in (first, second)]
    for change in rerun:
        write(sessions, change)
    with sessions() as session:
        found = {r.seq: r.payload["QuaTrinhXuLy"] for r in portal_outbox.list_rows(session, "HS-2026-000001")}
    assert found[1][0]["ThoiDiemXuLy"] == "2026-03-02T09:00:00+07:00"  # delivered: as sent
    assert found[2][0]["ThoiDiemXuLy"] == "2026-03-02T10:01:00+07:00"  # waiting: the durable version
    assert found[5][0]["ThoiDiemXuLy"] == "2026-03-02T13:01:00+07:00"


def test_a_write_the_store_refuses_queues_nothing(sessions):
    first, second, *_ = portal_journey()
    with sessions.begin() as session:
        projection.write_changes(session, first, run_id="run-a", portal=ADAPTER)
    with pytest.raises(projection.ForeignRunError), sessions.begin() as session:
        projection.write_changes(session, second, run_id="run-b", portal=ADAPTER)
    assert rows(sessions) == PORTAL_JOURNEY_ROWS[:2]


def test_only_the_oldest_waiting_change_of_each_dossier_is_claimed(sessions):
    for dossier in ("HS-B", "HS-A"):
        for change in portal_journey(dossier)[:2]:
            write(sessions, change)
    assert claimed(sessions) == [("HS-B", 1), ("HS-A", 1)]  # oldest first: B was written first
    assert claimed(sessions, limit=1) == [("HS-B", 1)]
    deliver(sessions, "HS-B", 1)
    assert claimed(sessions) == [("HS-B", 2), ("HS-A", 1)]  # B's next change is older than A's first


def test_a_parked_change_no_longer_holds_its_dossier_and_a_later_delivery_supersedes_it(sessions):
    for change in portal_journey()[:2]:
        write(sessions, change)
    deliver(sessions, "HS-2026-000001", 1)
    park(sessions, "HS-2026-000001", 2)
    assert claimed(sessions) == [("HS-2026-000001", 3)]
    with sessions() as session:
        assert [(p.seq, p.last_error) for p in portal_outbox.list_parked(session)] == \
            [(2, "HTTP 422: MaTTHC không tồn tại")]
        assert portal_outbox.backlog(session).parked == 1
    deliver(sessions, "HS-2026-000001", 3)  # carries seq 2's timeline entry too
    with sessions() as session:
        assert portal_outbox.list_parked(session) == []
        assert portal_outbox.backlog(session).parked == 0


def test_retrying_parked_changes_sends_them_again_in_order(sessions):
    for change in portal_journey()[:2]:
        write(sessions, change)
    park(sessions, "HS-2026-000001", 1)
    park(sessions, "HS-2026-000001", 2)
    deliver(sessions, "HS-2026-000001", 3)
    park(sessions, "HS-2026-000001", 5)
    with sessions.begin() as session:
        assert portal_outbox.retry_parked(session, ["HS-OTHER"]) == []
        again = portal_outbox.retry_parked(session)
    assert [p.seq for p in again] == [5]  # 1 and 2 are superseded by 3
    assert claimed(sessions) == [("HS-2026-000001", 5)]


def test_the_backlog_counts_what_waits_and_how_old_it_is(sessions):
    with sessions() as session:
        assert portal_outbox.backlog(session) == portal_outbox.Backlog(0, None, 0)
    write(sessions, portal_journey("HS-A")[0], now=NOW)
    write(sessions, portal_journey("HS-B")[0], now=NOW + timedelta(minutes=3))
    deliver(sessions, "HS-A", 1)
    with sessions() as session:
        assert portal_outbox.backlog(session) == portal_outbox.Backlog(3, NOW, 0)


def test_a_timeline_event_before_the_first_status_change_of_the_sync_takes_the_next_status(sessions):
    # The sync was turned on mid-way: no earlier row says the status before this write.
    third = portal_journey()[2]
    write(sessions, make_write(make_state(progress=2), 5), portal=False)
    write(sessions, third)
    assert rows(sessions) == [(6, "step_completed", 9), (7, "result_ready", 9), (8, "step_assigned", 9)]


def test_the_message_for_a_change_carries_the_timeline_so_far(sessions):
    for change in portal_journey():
        write(sessions, change)
    with sessions() as session:
        message = ADAPTER.message(portal_outbox.payloads_until(session, "HS-2026-000001", 7))
    assert message["TrangThaiHoSo"] == 9
    assert [entry["TrangThai"] for entry in message["QuaTrinhXuLy"]] == [2, 4, 4, 4, 4, 9]


def test_an_event_of_another_kind_is_not_queued(sessions):
    state = make_state()
    overdue = DossierEvent(dossier_id=state.dossier_id, seq=1, kind="dossier_overdue", at=T0)
    write(sessions, StoreWrite(events=[overdue], state=state))
    assert rows(sessions) == []
