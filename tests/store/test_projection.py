"""The audit log is append-only and idempotent; the projection only moves forward."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.models import DossierEventRow, DossierRow, DossierStepRow
from store.projection import (
    apply_state,
    get_dossier,
    last_seq,
    list_events,
    open_dossier_ids,
    record_event,
    write_changes,
)
from tests.store.builders import make_state, make_write
from workflows.payloads import PORTAL_STATUS, DossierState, DossierStatus, Note

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _record(sessions: sessionmaker[Session], state: DossierState, seq: int, now: datetime = NOW) -> bool:
    with sessions.begin() as session:
        return record_event(session, make_write(state, seq), now=now)


def _dossier(sessions: sessionmaker[Session], dossier_id: str) -> dict[str, object]:
    with sessions() as session:
        row = session.get_one(DossierRow, dossier_id)
        return {c.key: getattr(row, c.key) for c in DossierRow.__mapper__.column_attrs}


def _steps(sessions: sessionmaker[Session], dossier_id: str) -> list[tuple[object, ...]]:
    with sessions() as session:
        rows = session.scalars(
            select(DossierStepRow).where(DossierStepRow.dossier_id == dossier_id).order_by(DossierStepRow.position)
        )
        return [
            (r.step_id, r.name, r.agency, r.status, r.assigned_at, r.due_at, r.original_due_at,
             r.completed_at, r.verdict, r.overdue, r.escalations, r.extensions)
            for r in rows
        ]


def _expected_steps(state: DossierState) -> list[tuple[object, ...]]:
    return [
        (s.id, s.name, s.agency, s.status.value, s.assigned_at, s.due_at, s.original_due_at,
         s.completed_at, s.verdict, s.overdue, s.escalations, s.extensions)
        for s in state.steps
    ]


def test_projection_equals_the_event_state(sessions: sessionmaker[Session]) -> None:
    state = make_state(progress=1)
    assert _record(sessions, state, 1)

    row = _dossier(sessions, state.dossier_id)
    assert row == {
        "id": state.dossier_id,
        "run_id": None,  # the write named no run (store/projection.py; the worker's always do)
        "procedure_code": "1.012756",
        "procedure_version": 1,
        "procedure_name": state.procedure_name,
        "sector": "G13-TN01",
        "level": "xa",
        "calendar": "vn-gov",
        "channel": "in_person",
        "status": "processing",
        "portal_status": 4,
        "received_at": state.received_at,
        "received_by": None,
        "finished_at": None,
        "awaiting_since": None,  # the agencies hold it (migration 0011)
        "clock_started_at": state.clock_started_at,
        "due_at": state.due_at,
        "original_due_at": state.original_due_at,
        "completed_at": None,
        "verdict": None,
        "overdue": True,
        "supplement_count": 0,
        "current_agencies": ["vpdk-tinh"],
        "last_seq": 1,
        "state": state.model_dump(mode="json"),
        "updated_at": NOW,
    }
    assert _steps(sessions, state.dossier_id) == _expected_steps(state)
    with sessions() as session:
        assert get_dossier(session, state.dossier_id) == state
        assert get_dossier(session, "HS-unknown") is None
        assert last_seq(session, state.dossier_id) == 1


def test_the_applicants_turn_is_projected_from_its_latest_request(sessions: sessionmaker[Session]) -> None:
    """`dossiers.awaiting_since` (migration 0011): the latest request of the waiting kind;
    NULL again once the dossier is resubmitted."""
    first, second = NOW + timedelta(hours=1), NOW + timedelta(hours=5)
    notes = [Note(at=first, kind="obligation_requested", text="lệ phí trước bạ"),
             Note(at=first + timedelta(hours=1), kind="resubmitted", text="paid"),
             Note(at=second, kind="obligation_requested", text="tiền sử dụng đất"),
             Note(at=second + timedelta(hours=1), kind="supplement_requested", text="not this kind")]
    paying = make_state(progress=1).model_copy(update={
        "status": DossierStatus.AWAITING_OBLIGATION, "portal_status": PORTAL_STATUS[DossierStatus.AWAITING_OBLIGATION],
        "notes": notes})
    assert _record(sessions, paying, 1)
    assert _dossier(sessions, paying.dossier_id)["awaiting_since"] == second
    resumed = paying.model_copy(update={"status": DossierStatus.PROCESSING, "portal_status": 4})
    assert _record(sessions, resumed, 2)
    assert _dossier(sessions, paying.dossier_id)["awaiting_since"] is None


def test_the_same_event_twice_is_recorded_once(sessions: sessionmaker[Session]) -> None:
    state = make_state(progress=1)
    assert _record(sessions, state, 1) is True
    # The write of seq 1 again, later, with another state: a workflow re-running the
    # transition after a worker died before its task completed. Its version is the
    # durable one and replaces the projection; the audit log keeps one row.
    rerun = make_state(progress=2)
    assert _record(sessions, rerun, 1, now=NOW + timedelta(minutes=5)) is False

    with sessions() as session:
        assert get_dossier(session, state.dossier_id) == rerun
        assert last_seq(session, state.dossier_id) == 1
        assert [(e.seq, e.kind, e.note) for e in list_events(session, state.dossier_id)] == [(1, "step_assigned", "event 1")]
    assert _steps(sessions, state.dossier_id) == _expected_steps(rerun)


def test_an_older_event_arriving_late_does_not_roll_back(sessions: sessionmaker[Session]) -> None:
    newer, older = make_state(progress=2), make_state(progress=1)
    assert _record(sessions, newer, 2)
    assert _record(sessions, older, 1)  # new to the audit log...

    with sessions() as session:
        assert get_dossier(session, newer.dossier_id) == newer  # ...but not to the projection
        assert last_seq(session, newer.dossier_id) == 2
        events = list_events(session, newer.dossier_id)
    assert [e.seq for e in events] == [1, 2]
    assert events[0].at.tzinfo is not None and events[0].recorded_at == NOW
    assert _steps(sessions, newer.dossier_id) == _expected_steps(newer)


def test_a_newer_event_replaces_steps_and_status(sessions: sessionmaker[Session]) -> None:
    _record(sessions, make_state(progress=0), 1)
    done = make_state(progress=3)
    _record(sessions, done, 2)
    row = _dossier(sessions, done.dossier_id)
    assert (row["status"], row["portal_status"], row["verdict"], row["current_agencies"]) == ("completed", 10, "early", [])
    assert _steps(sessions, done.dossier_id) == _expected_steps(done)


def test_a_rerun_transition_rewrites_the_rows_of_its_seqs(sessions: sessionmaker[Session]) -> None:
    """A worker died after writing seqs 2-3 (two concurrent completions) but before its
    workflow task completed; the workflow re-ran them in the other order: the durable
    version replaces both the projection and the audit-log rows of those seqs."""
    first = make_write(make_state(progress=1), 2, "step_completed")  # seq 2: tham-dinh
    first.events.append(first.events[0].model_copy(update={"seq": 3, "step_id": "tra-ket-qua", "note": "lost"}))
    rerun = make_write(make_state(progress=2), 2, "step_completed")
    rerun.events[0] = rerun.events[0].model_copy(update={"step_id": "tra-ket-qua", "note": "durable 2"})
    rerun.events.append(first.events[0].model_copy(update={"seq": 3, "note": "durable 3"}))
    with sessions.begin() as session:
        assert [e.seq for e in write_changes(session, first)] == [2, 3]
    with sessions.begin() as session:
        assert write_changes(session, rerun) == []  # rewritten, not new: counted once
    with sessions() as session:
        rows = [(e.seq, e.step_id, e.note) for e in list_events(session, "HS-2026-000001")]
        assert rows == [(2, "tra-ket-qua", "durable 2"), (3, "tham-dinh", "durable 3")]
        assert get_dossier(session, "HS-2026-000001") == make_state(progress=2)


def test_a_rerun_shorter_than_the_lost_writes_still_rewrites_its_seqs(sessions: sessionmaker[Session]) -> None:
    """The lost workflow task wrote seqs 2-4 in one write; the re-run writes seq 2-3
    first (another order of the same completions), then 4. Its rows replace the lost
    ones although the projection, already at seq 4, does not move back (a chaos run
    found a completion twice in the audit log and another missing before this)."""
    lost = make_write(make_state(progress=2), 2, "step_completed")
    lost.events += [lost.events[0].model_copy(update={"seq": 3, "step_id": "tra-ket-qua", "note": "lost 3"}),
                    lost.events[0].model_copy(update={"seq": 4, "kind": "completed", "note": "lost 4"})]
    rerun = make_write(make_state(progress=1), 2, "step_completed")
    rerun.events[0] = rerun.events[0].model_copy(update={"step_id": "tra-ket-qua", "note": "durable 2"})
    rerun.events.append(lost.events[0].model_copy(update={"seq": 3, "note": "durable 3"}))
    with sessions.begin() as session:
        assert [e.seq for e in write_changes(session, lost)] == [2, 3, 4]
    with sessions.begin() as session:
        assert write_changes(session, rerun) == []
    with sessions() as session:
        rows = [(e.seq, e.step_id, e.note) for e in list_events(session, "HS-2026-000001")]
        assert rows[:2] == [(2, "tra-ket-qua", "durable 2"), (3, "tham-dinh", "durable 3")]
        assert get_dossier(session, "HS-2026-000001") == make_state(progress=2)  # seq 4's state stays


def test_apply_state_moves_only_forward(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert apply_state(session, make_state(progress=1), 5)
        assert not apply_state(session, make_state(progress=2), 4)
        assert apply_state(session, make_state(progress=2), 6)
    with sessions() as session:
        assert get_dossier(session, "HS-2026-000001") == make_state(progress=2)
        assert list_events(session, "HS-2026-000001") == []  # a resync writes no event


def test_an_event_must_carry_its_own_dossier(sessions: sessionmaker[Session]) -> None:
    write = make_write(make_state("HS-A"), 1)
    write.events[0] = write.events[0].model_copy(update={"dossier_id": "HS-B"})
    with pytest.raises(ValueError, match="HS-A"), sessions.begin() as session:
        record_event(session, write)


def test_open_dossiers(sessions: sessionmaker[Session]) -> None:
    _record(sessions, make_state("HS-1", progress=0), 1)
    _record(sessions, make_state("HS-2", progress=3), 1)  # completed
    _record(sessions, make_state("HS-3", progress=1, calendar="continuous"), 1)
    with sessions() as session:
        assert open_dossier_ids(session) == ["HS-1", "HS-3"]
        assert open_dossier_ids(session, calendar="continuous") == ["HS-3"]
        assert open_dossier_ids(session, calendar="vn-gov") == ["HS-1"]


def test_concurrent_writers_of_one_dossier(sessions: sessionmaker[Session]) -> None:
    """8 workers record 40 events of one dossier in a random order, each event twice."""
    dossier_id, count = "HS-2026-CONCURRENT", 40
    states = {seq: make_state(dossier_id, progress=seq % 4, marker=f"seq {seq}") for seq in range(1, count + 1)}
    work = [seq for seq in states for _ in range(2)]
    random.Random(7).shuffle(work)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    new: list[int] = []

    def writer(mine: list[int]) -> None:
        try:
            barrier.wait()
            for seq in mine:
                with sessions.begin() as session:
                    if record_event(session, make_write(states[seq], seq)):
                        new.append(seq)
        except BaseException as exc:  # the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(work[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(new) == list(states)  # each event was new exactly once
    with sessions() as session:
        per_seq = session.execute(
            select(DossierEventRow.seq, func.count()).where(DossierEventRow.dossier_id == dossier_id)
            .group_by(DossierEventRow.seq).order_by(DossierEventRow.seq)
        ).all()
        assert [tuple(r) for r in per_seq] == [(seq, 1) for seq in states]
        assert last_seq(session, dossier_id) == count
        assert get_dossier(session, dossier_id) == states[count]
    assert _steps(sessions, dossier_id) == _expected_steps(states[count])
