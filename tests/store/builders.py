"""Small DossierState / StoreWrite / Routing builders for the store tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from workflows.payloads import (
    PORTAL_STATUS,
    DossierEvent,
    DossierState,
    DossierStatus,
    Routing,
    StepState,
    StepStatus,
    StoreWrite,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=HCM)  # a Monday morning in Vietnam
STEPS = [
    ("tiep-nhan", "Tiếp nhận hồ sơ", "bpmc-xa-xa-tan-lap"),
    ("tham-dinh", "Thẩm định hồ sơ", "vpdk-tinh"),
    ("tra-ket-qua", "Trả kết quả", "bpmc-xa-xa-tan-lap"),
]


def make_state(
    dossier_id: str = "HS-2026-000001",
    *,
    progress: int = 0,
    marker: str | None = None,
    calendar: str = "vn-gov",
) -> DossierState:
    """A dossier whose first ``progress`` steps are done (all of them: completed).

    ``marker`` lands in ``result_note``, to tell states apart in assertions.
    """
    steps = []
    for index, (step_id, name, agency) in enumerate(STEPS):
        assigned = T0 + timedelta(hours=4 * index)
        step = StepState(id=step_id, name=name, deadline="0.5d")
        if index < progress:
            step = step.model_copy(update={
                "agency": agency, "status": StepStatus.COMPLETED, "assigned_at": assigned,
                "due_at": assigned + timedelta(hours=4), "original_due_at": assigned + timedelta(hours=4),
                "completed_at": assigned + timedelta(hours=3), "verdict": "on_time",
            })
        elif index == progress:
            step = step.model_copy(update={
                "agency": agency, "status": StepStatus.ASSIGNED, "assigned_at": assigned,
                "due_at": assigned + timedelta(hours=4), "original_due_at": assigned + timedelta(hours=4),
                "overdue": progress == 1, "escalations": int(progress == 1),
            })
        steps.append(step)
    status = DossierStatus.COMPLETED if progress >= len(STEPS) else DossierStatus.PROCESSING
    return DossierState(
        dossier_id=dossier_id,
        procedure_code="1.012756",
        procedure_version=1,
        procedure_name="Đăng ký đất đai, tài sản gắn liền với đất lần đầu",
        content_hash="0" * 64,
        sector="G13-TN01",
        level="xa",
        calendar=calendar,
        channel="in_person",
        status=status,
        portal_status=PORTAL_STATUS[status],
        received_at=T0,
        clock_started_at=T0,
        due_at=T0 + timedelta(days=20),
        original_due_at=T0 + timedelta(days=20),
        completed_at=T0 + timedelta(hours=11) if status == DossierStatus.COMPLETED else None,
        verdict="early" if status == DossierStatus.COMPLETED else None,
        overdue=progress == 1,
        result_note=marker,
        steps=steps,
    )


def make_write(state: DossierState, seq: int, kind: str = "step_assigned",
               routings: list[Routing] | None = None) -> StoreWrite:
    """One store write: an event at `seq` leading to `state` (every step row rewritten)."""
    event = DossierEvent(
        dossier_id=state.dossier_id,
        seq=seq,
        kind=kind,
        at=T0 + timedelta(minutes=seq),
        actor="system",
        step_id=STEPS[min(seq, len(STEPS)) - 1][0],
        note=f"event {seq}",
    )
    return StoreWrite(events=[event], state=state, steps=[s.id for s in state.steps], routings=routings or [])


def make_routing(
    dossier_id: str = "HS-2026-000001",
    step_id: str = "tham-dinh",
    agency: str = "vpdk-tinh",
    due_at: datetime = T0 + timedelta(days=5),
    reason: str = "assigned",
) -> Routing:
    return Routing(
        dossier_id=dossier_id,
        procedure_code="1.012756",
        procedure_version=1,
        sector="G13-TN01",
        step_id=step_id,
        step_name="Thẩm định hồ sơ",
        agency=agency,
        assigned_at=T0,
        due_at=due_at,
        reason=reason,  # type: ignore[arg-type]
    )


def portal_journey(dossier_id: str = "HS-2026-000001", applicant: str | None = "Nguyễn Văn A") -> list[StoreWrite]:
    """A dossier's store writes from receipt to the result returned, with the portal
    statuses the workflow sets on its events (issue 14's kinds): seqs 1-10, a step_overdue
    (seq 4, not sent to the portal) among them."""

    def event(seq: int, kind: str, step: str | None = None, portal: int | None = None,
              actor: str = "system", note: str | None = None) -> DossierEvent:
        return DossierEvent(dossier_id=dossier_id, seq=seq, kind=kind, at=T0 + timedelta(hours=seq), actor=actor,
                            step_id=step, note=note, portal_status=portal)

    def state(progress: int, status: DossierStatus = DossierStatus.PROCESSING, **fields: object) -> DossierState:
        return make_state(dossier_id, progress=progress).model_copy(update={
            "received_by": "bpmc-xa-xa-tan-lap", "status": status, "portal_status": PORTAL_STATUS[status],
            "completed_at": None, "verdict": None, **fields})

    def write(events: list[DossierEvent], at: DossierState) -> StoreWrite:
        return StoreWrite(events=events, state=at, steps=[s.id for s in at.steps], applicant=applicant)

    finished = T0 + timedelta(hours=7)
    returned = T0 + timedelta(hours=10)
    return [
        write([event(1, "received", portal=2, actor="bpmc-xa-xa-tan-lap"),
               event(2, "step_assigned", "tiep-nhan", portal=4)], state(0)),
        write([event(3, "step_completed", "tiep-nhan", actor="bpmc-xa-xa-tan-lap"),
               event(4, "step_overdue", "tham-dinh"),
               event(5, "step_assigned", "tham-dinh")], state(1)),
        write([event(6, "step_completed", "tham-dinh", actor="vpdk-tinh", note="đủ điều kiện"),
               event(7, "result_ready", portal=9), event(8, "step_assigned", "tra-ket-qua")],
              state(2, DossierStatus.RESULT_READY, finished_at=finished, verdict="early")),
        write([event(9, "step_completed", "tra-ket-qua", actor="bpmc-xa-xa-tan-lap"),
               event(10, "completed", portal=10)],
              state(3, DossierStatus.COMPLETED, finished_at=finished, completed_at=returned, verdict="early")),
    ]


# (seq, kind, TrangThaiHoSo) of the rows portal_journey queues: every event but the step_overdue.
PORTAL_JOURNEY_ROWS = [(1, "received", 2), (2, "step_assigned", 4), (3, "step_completed", 4),
                       (5, "step_assigned", 4), (6, "step_completed", 4), (7, "result_ready", 9),
                       (8, "step_assigned", 9), (9, "step_completed", 9), (10, "completed", 10)]
