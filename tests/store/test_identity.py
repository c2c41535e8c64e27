"""The store owns dossier identity (store/identity.py): an id once reserved is never
reserved by another request, and the projection keeps the workflow run it describes
(store/projection.py), on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store import identity, projection
from store.models import DossierEventRow, DossierIdRow, InboxItemRow
from tests.store.builders import make_routing, make_state, make_write


def test_an_id_is_reserved_once_and_only_its_request_may_go_on(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        first = identity.reserve(session, "HS-1", request="desk-a:k1", received_by="desk-a")
    assert (first.mine, first.request, first.run_id, first.status) == (True, "desk-a:k1", None, None)
    with sessions.begin() as session:  # the same request again (its answer was lost): it may go on
        again = identity.reserve(session, "HS-1", request="desk-a:k1", received_by="desk-a")
        other = identity.reserve(session, "HS-1", request="desk-b:k9", received_by="desk-b")
        anonymous = identity.reserve(session, "HS-1", request=None, received_by=None)
    assert again.mine and not other.mine and not anonymous.mine
    assert other.request == "desk-a:k1"
    with sessions() as session:
        row = session.get(DossierIdRow, "HS-1")
        assert row is not None and (row.request, row.received_by, row.run_id) == ("desk-a:k1", "desk-a", None)


def test_a_request_less_reservation_is_nobodys_to_retry(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert identity.reserve(session, "HS-1", request=None, received_by=None).mine
    with sessions.begin() as session:
        assert not identity.reserve(session, "HS-1", request=None, received_by=None).mine


def test_the_run_is_recorded_once(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        identity.reserve(session, "HS-1", request="r", received_by=None)
        assert identity.record_run(session, "HS-1", "run-a")
        assert not identity.record_run(session, "HS-1", "run-b")  # never replaced
    with sessions.begin() as session:
        reservation = identity.reserve(session, "HS-1", request="r", received_by=None)
    assert reservation.mine and reservation.run_id == "run-a"
    with sessions() as session:
        row = identity.get(session, "HS-1")
        assert row is not None and row.run_id == "run-a" and row.started_at is not None


def test_an_id_the_projection_holds_is_taken_even_without_a_reservation(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:  # a workflow started by another path wrote it
        projection.apply_state(session, make_state("HS-1", progress=1), 1)
    with sessions.begin() as session:
        taken = identity.reserve(session, "HS-1", request="r", received_by=None)
    assert not taken.mine and taken.status == "processing"
    with sessions.begin() as session:  # reserved for nobody: the same request is refused again
        assert not identity.reserve(session, "HS-1", request="r", received_by=None).mine


def _counts(session: Session) -> tuple[int, int]:
    return (session.scalar(select(func.count()).select_from(DossierEventRow)) or 0,
            session.scalar(select(func.count()).select_from(InboxItemRow)) or 0)


def test_the_projection_keeps_its_run_and_refuses_another_runs_writes(sessions: sessionmaker[Session]) -> None:
    state = make_state("HS-1", progress=1)
    with sessions.begin() as session:
        projection.write_changes(session, make_write(state, 1, routings=[make_routing("HS-1")]), run_id="run-a")
        projection.write_changes(session, make_write(state, 2), run_id="run-a")
    with sessions() as session:
        assert projection.last_run(session, "HS-1") == "run-a"
        before = (_counts(session), projection.get_dossier(session, "HS-1"), projection.last_seq(session, "HS-1"))

    # Another run of the same id (started outside the store's reservation): its first
    # writes are older seqs, its later ones newer; none of them lands.
    other = make_state("HS-1", progress=2)
    for seq in (1, 2, 3):
        with pytest.raises(projection.ForeignRunError, match="run-b"), sessions.begin() as session:
            projection.write_changes(session, make_write(other, seq, routings=[make_routing("HS-1", "x")]),
                                     run_id="run-b")
    with sessions() as session:
        assert (_counts(session), projection.get_dossier(session, "HS-1"), projection.last_seq(session, "HS-1")) \
            == before
        assert projection.last_run(session, "HS-1") == "run-a"
    with sessions.begin() as session:  # resync of another run does not rewrite it either
        assert not projection.apply_state(session, other, 9, run_id="run-b")
    with sessions.begin() as session:  # its own run goes on
        projection.write_changes(session, make_write(other, 3), run_id="run-a")
        assert projection.last_seq(session, "HS-1") == 3


def test_a_row_written_before_runs_were_recorded_takes_the_first_run_that_writes(
        sessions: sessionmaker[Session]) -> None:
    state = make_state("HS-1", progress=1)
    with sessions.begin() as session:
        projection.write_changes(session, make_write(state, 1))  # no run known
        assert projection.last_run(session, "HS-1") is None
        projection.write_changes(session, make_write(state, 2), run_id="run-a")
        assert projection.last_run(session, "HS-1") == "run-a"
        described = projection.described(session, "HS-1")
    assert described is not None and (described.run_id, described.procedure, described.last_seq) \
        == ("run-a", f"{state.procedure_code}@{state.procedure_version}", 2)
