"""A hand-over retried after the step moved on puts nothing back in the inbox.

Found by the chaos test (tests/chaos): a worker committed a step's hand-over (event +
inbox item) but died, or the server restarted, before the result was reported; the
agency completed the step from its inbox and the item was taken out; then the retried
assignment ran again and put the item back, where it stayed for good. A store write
now changes inboxes only when it moves the projection forward.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from activities.recording import RecordingActivities
from store import inbox, projection
from tests.store.builders import T0, make_routing, make_state, make_write
from workflows.payloads import DossierStatus, Note, StoreWrite

DOSSIER = "HS-2026-000001"


@pytest.fixture
def sessions(migrated_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    return migrated_sessions


def items(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        return [(i.dossier_id, i.step_id) for i in inbox.list_items(session, "vpdk-tinh", now=T0)]


def assigned() -> StoreWrite:
    """tham-dinh routed to vpdk-tinh (seq 2)."""
    return make_write(make_state(DOSSIER, progress=1), 2, "step_assigned",
                      [make_routing(DOSSIER, "tham-dinh", "vpdk-tinh")])


def completed() -> StoreWrite:
    """tham-dinh done and taken out of the inbox (seq 3)."""
    return make_write(make_state(DOSSIER, progress=2), 3, "step_completed",
                      [make_routing(DOSSIER, "tham-dinh", "vpdk-tinh", reason="withdrawn")])


@pytest.mark.parametrize("first_attempt_committed", [True, False])
def test_a_late_retry_of_an_assignment_does_not_put_a_done_step_back(sessions, first_attempt_committed):
    recording = RecordingActivities(sessions)
    if first_attempt_committed:
        recording.write_changes(assigned())
        assert items(sessions) == [(DOSSIER, "tham-dinh")]
    recording.write_changes(completed())
    recording.write_changes(assigned())  # the retry, after the step was completed
    assert items(sessions) == []
    with sessions() as session:
        assert [e.seq for e in projection.list_events(session, DOSSIER)] == [2, 3]
        assert projection.last_seq(session, DOSSIER) == 3


def test_a_step_waiting_for_the_applicant_comes_back_only_when_resubmitted(sessions):
    recording = RecordingActivities(sessions)
    recording.write_changes(assigned())
    asked = make_state(DOSSIER, progress=1).model_copy(update={
        "status": DossierStatus.AWAITING_SUPPLEMENT, "paused_at": T0 + timedelta(hours=1),
        "notes": [Note(at=T0 + timedelta(hours=1), kind="supplement_requested", agency="vpdk-tinh",
                       step_id="tham-dinh", text="thiếu giấy tờ")]})
    recording.write_changes(make_write(asked, 3, "supplement_requested",
                                       [make_routing(DOSSIER, "tham-dinh", "vpdk-tinh", reason="withdrawn")]))
    recording.write_changes(assigned())  # a late retry while the applicant holds the dossier
    assert items(sessions) == []

    resumed = asked.model_copy(update={"status": DossierStatus.PROCESSING, "paused_at": None})
    recording.write_changes(make_write(resumed, 4, "resubmitted",
                                       [make_routing(DOSSIER, "tham-dinh", "vpdk-tinh", reason="resumed")]))
    assert items(sessions) == [(DOSSIER, "tham-dinh")]


def test_a_routing_for_a_dossier_the_projection_does_not_know_is_applied(sessions):
    RecordingActivities(sessions).write_changes(make_write(make_state("HS-UNKNOWN", progress=1), 2, "step_assigned",
                                                           [make_routing("HS-UNKNOWN", "tham-dinh", "vpdk-tinh")]))
    assert items(sessions) == [("HS-UNKNOWN", "tham-dinh")]


def test_a_store_refusing_the_value_is_not_retried_a_store_that_is_down_is() -> None:
    """write_changes stops Temporal's retries only for what retrying cannot fix."""
    from sqlalchemy.exc import DataError, OperationalError, StatementError

    from activities.recording import refused_for_good

    assert refused_for_good(DataError("INSERT", {}, Exception("value too long")))
    assert refused_for_good(StatementError("bind", "INSERT", {}, OverflowError("date value out of range")))
    assert refused_for_good(OverflowError("date value out of range"))
    assert not refused_for_good(OperationalError("INSERT", {}, Exception("connection refused")))
    assert not refused_for_good(ConnectionError("reset"))
