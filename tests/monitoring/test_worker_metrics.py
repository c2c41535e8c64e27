"""Worker event counters: counted once per new event, whatever the retries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import generate_latest
from sqlalchemy.orm import Session, sessionmaker

from activities import metrics
from activities.recording import RecordingActivities
from definitions.calendar import load_calendar
from tests.monitoring.builders import NOW, dossier, step
from workflows.payloads import DossierEvent, DossierState, DossierStatus, Note, StepStatus, StoreWrite


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def event(state: DossierState, seq: int, kind: str, step_id: str | None = None) -> StoreWrite:
    """A store write of one event leading to `state`."""
    happened = DossierEvent(dossier_id=state.dossier_id, seq=seq, kind=kind, at=NOW, actor="system",
                            step_id=step_id)
    return StoreWrite(events=[happened], state=state, steps=[s.id for s in state.steps])


def test_each_event_is_counted_once_even_when_recorded_again(store: sessionmaker[Session]) -> None:
    recording = RecordingActivities(store)
    sector = {"sector": "G13-TN01"}
    dossier_labels = {**sector, "level": "xa", "procedure": "1.012756"}
    before = {
        "received": value("lienthong_dossiers_received_total", **dossier_labels),
        "missed": value("lienthong_dossier_deadline_misses_total", **dossier_labels),
        "step_missed": value("lienthong_step_deadline_misses_total", **sector, agency="vpdk-tinh"),
        "escalated": value("lienthong_escalations_total", **sector, agency="vpdk-tinh", escalate_to="so-nnmt"),
        "supplement": value("lienthong_supplement_requests_total", **sector, agency="vpdk-tinh"),
        "step_late": value("lienthong_steps_finished_total", **sector, agency="vpdk-tinh", outcome="approved",
                           verdict="late"),
        "rejected_late": value("lienthong_dossiers_finished_total", **dossier_labels, status="rejected",
                               verdict="late"),
        "worked": value("lienthong_dossier_working_time_seconds_count", **sector),
    }
    received = dossier("M1", steps=[step("tham-dinh", "vpdk-tinh", escalate_to="so-nnmt")])
    late_step = received.model_copy(update={"steps": [step("tham-dinh", "vpdk-tinh", overdue=True,
                                                           escalate_to="so-nnmt")]})
    done_step = received.model_copy(update={"steps": [step("tham-dinh", "vpdk-tinh", StepStatus.COMPLETED,
                                                           overdue=True, verdict="late")]})
    finished = received.model_copy(update={
        "status": DossierStatus.REJECTED, "verdict": "late", "completed_at": NOW, "overdue": True,
        "steps": [step("tham-dinh", "vpdk-tinh", StepStatus.COMPLETED, overdue=True, verdict="late")]})
    events = [event(received, 1, "received"), event(late_step, 2, "step_overdue", "tham-dinh"),
              event(late_step, 3, "dossier_overdue"), event(late_step, 4, "supplement_requested", "tham-dinh"),
              event(done_step, 5, "step_completed", "tham-dinh"), event(finished, 6, "rejected")]
    for e in events:
        recording.write_changes(e)
    for e in reversed(events):  # retries, in any order: already recorded, not counted
        recording.write_changes(e)

    assert value("lienthong_dossiers_received_total", **dossier_labels) == before["received"] + 1
    assert value("lienthong_dossier_deadline_misses_total", **dossier_labels) == before["missed"] + 1
    assert value("lienthong_step_deadline_misses_total", **sector, agency="vpdk-tinh") == before["step_missed"] + 1
    assert value("lienthong_escalations_total", **sector, agency="vpdk-tinh",
                 escalate_to="so-nnmt") == before["escalated"] + 1
    assert value("lienthong_supplement_requests_total", **sector, agency="vpdk-tinh") == before["supplement"] + 1
    assert value("lienthong_steps_finished_total", **sector, agency="vpdk-tinh", outcome="approved",
                 verdict="late") == before["step_late"] + 1
    assert value("lienthong_dossiers_finished_total", **dossier_labels, status="rejected",
                 verdict="late") == before["rejected_late"] + 1
    assert value("lienthong_dossier_working_time_seconds_count", **sector) == before["worked"] + 1


def test_known_procedures_start_at_zero(store: sessionmaker[Session]) -> None:
    shipped = Path(__file__).resolve().parents[2] / "definitions" / "procedures"
    assert metrics.initialize_from_store(store) == len(list(shipped.glob("*.yaml")))
    text = generate_latest(metrics.REGISTRY).decode()
    for verdict in ("early", "on_time", "late"):
        assert (f'lienthong_dossiers_finished_total{{level="tinh",procedure="2.001610",sector="G05-KD10",'
                f'status="completed",verdict="{verdict}"}}') in text
    assert 'lienthong_dossiers_received_total{level="xa",procedure="1.009974",sector="G09-XD05"}' in text


def test_working_time_is_on_the_calendar_without_the_applicants_time() -> None:
    """vn-gov: Monday 2026-03-02 08:00 → Wednesday 2026-03-04 08:00 is 16 working hours;
    the applicant held it Monday 13:00 → Tuesday 13:00 (8 working hours)."""
    from zoneinfo import ZoneInfo

    hcm = ZoneInfo("Asia/Ho_Chi_Minh")
    start = NOW.replace(year=2026, month=3, day=2).astimezone(hcm).replace(hour=8, minute=0)
    state = dossier("W", status=DossierStatus.COMPLETED).model_copy(update={
        "clock_started_at": start, "completed_at": start + timedelta(days=2),
        "notes": [Note(at=start.replace(hour=13), kind="supplement_requested", text="thiếu giấy tờ"),
                  Note(at=start.replace(hour=13) + timedelta(days=1), kind="resubmitted", text="đã bổ sung")],
    })
    assert load_calendar("vn-gov").elapsed(start, start + timedelta(days=2)) == timedelta(hours=16)
    assert metrics.working_time(state) == timedelta(hours=8)
    assert metrics.working_time(state.model_copy(update={"completed_at": None})) is None


def test_a_broken_event_costs_a_data_point_not_the_activity() -> None:
    odd = dossier("Z", status=DossierStatus.COMPLETED, calendar="no-such-calendar")
    write = event(odd, 9, "completed")
    metrics.observe(write.events[0], write.state)  # unknown calendar: logged, not raised


def test_a_dossier_is_resolved_once_at_decision_766s_end_time(store: sessionmaker[Session]) -> None:
    """Status 9 resolves it; its return (10) afterwards does not count again; a dossier
    stopped before 9 is resolved at the stop (the Biểu 06 report's columns 7-10)."""
    recording = RecordingActivities(store)
    labels = {"sector": "G13-TN01", "level": "xa"}

    def resolved(status: str, verdict: str) -> float:
        return value("lienthong_dossiers_resolved_total", **labels, status=status, verdict=verdict)

    before = {(s, v): resolved(s, v) for s in metrics.RESOLVING for v in metrics.VERDICTS}
    received = dossier("R1", steps=[step("tham-dinh", "vpdk-tinh")])
    ready = received.model_copy(update={"status": DossierStatus.RESULT_READY, "verdict": "early",
                                        "finished_at": NOW})
    returned = ready.model_copy(update={"status": DossierStatus.COMPLETED, "completed_at": NOW})
    stopped = dossier("R2", steps=[step("tham-dinh", "vpdk-tinh")]).model_copy(update={
        "status": DossierStatus.WITHDRAWN, "verdict": "late", "completed_at": NOW})
    rejected_after_9 = ready.model_copy(update={"dossier_id": "R3", "status": DossierStatus.REJECTED,
                                                "completed_at": NOW})
    writes = [event(received, 1, "received"), event(ready, 2, "result_ready"), event(returned, 3, "completed"),
              event(stopped, 1, "withdrawal_requested"), event(stopped, 2, "withdrawn"),
              event(rejected_after_9, 1, "result_ready"), event(rejected_after_9, 2, "rejected")]
    for w in writes + writes[::-1]:  # retried in any order: counted once
        recording.write_changes(w)
    after = {(s, v): resolved(s, v) - before[(s, v)] for s in metrics.RESOLVING for v in metrics.VERDICTS}
    assert {key: n for key, n in after.items() if n} == {("result_ready", "early"): 2, ("withdrawn", "late"): 1}
