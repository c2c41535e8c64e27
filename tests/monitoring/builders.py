"""Dossier states in every situation the gauges distinguish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.payloads import PORTAL_STATUS, DossierState, DossierStatus, StepState, StepStatus

NOW = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam, a Tuesday


def step(step_id: str, agency: str | None, status: StepStatus = StepStatus.ASSIGNED, *,
         due: timedelta | None = timedelta(hours=4), overdue: bool = False, escalate_to: str | None = None,
         verdict: str | None = None) -> StepState:
    """A step; `due` is relative to NOW."""
    due_at = NOW + due if due is not None else None
    return StepState(id=step_id, name=step_id, agency=agency, status=status, deadline="1d",
                     assigned_at=NOW - timedelta(days=1) if agency else None, due_at=due_at,
                     original_due_at=due_at, overdue=overdue, escalate_to=escalate_to, verdict=verdict)


def dossier(dossier_id: str, *, sector: str = "G13-TN01", level: str = "xa", procedure: str = "1.012756",
            status: DossierStatus = DossierStatus.PROCESSING, due: timedelta = timedelta(days=3),
            legal_due: timedelta | None = None, overdue: bool = False, steps: list[StepState] | None = None,
            verdict: str | None = None, calendar: str = "vn-gov") -> DossierState:
    """An open (or finished) dossier whose due is `due` from NOW (legal due: `legal_due`)."""
    finished = status in (DossierStatus.COMPLETED, DossierStatus.REJECTED)
    return DossierState(
        dossier_id=dossier_id, procedure_code=procedure, procedure_version=1, procedure_name="Thủ tục",
        content_hash="0" * 64, sector=sector, level=level, calendar=calendar, channel="online",
        status=status, portal_status=PORTAL_STATUS[status], received_at=NOW - timedelta(days=5),
        clock_started_at=NOW - timedelta(days=5), due_at=NOW + due,
        original_due_at=NOW + (legal_due if legal_due is not None else due),
        overdue=overdue, steps=steps or [], completed_at=NOW - timedelta(hours=1) if finished else None,
        verdict=verdict or ("late" if finished else None),
    )


def situation() -> list[DossierState]:
    """A: on time. B: due passed, not yet flagged. C: flagged, then extended. D: awaiting a
    supplement with a due passed meanwhile (clock stopped: not late). E: flagged, then
    awaiting a supplement. F, G: finished (not open). H: another sector, on time."""
    awaiting = DossierStatus.AWAITING_SUPPLEMENT
    return [
        dossier("A", steps=[step("tiep-nhan", "bpmc-xa-xa-tan-lap")]),
        dossier("B", due=-timedelta(hours=2),
                steps=[step("tham-dinh", "vpdk-tinh", due=-timedelta(hours=3))]),
        dossier("C", due=timedelta(days=5), legal_due=-timedelta(days=1), overdue=True,
                steps=[step("tham-dinh", "vpdk-tinh", due=timedelta(days=5), overdue=True, escalate_to="so-nnmt")]),
        dossier("D", status=awaiting, due=-timedelta(days=1),
                steps=[step("thue", "thue-co-so", due=-timedelta(hours=1))]),
        dossier("E", status=awaiting, due=-timedelta(days=3), overdue=True,
                steps=[step("tham-dinh", None, StepStatus.PENDING, due=None)]),
        dossier("F", status=DossierStatus.COMPLETED, due=-timedelta(days=2), overdue=True,
                steps=[step("tham-dinh", "vpdk-tinh", StepStatus.COMPLETED, due=-timedelta(days=2),
                            overdue=True, verdict="late")]),
        dossier("G", status=DossierStatus.REJECTED, due=-timedelta(days=2)),
        dossier("H", sector="G15-TP07", procedure="3.000722",
                steps=[step("dang-ky", "ubnd-xa-xa-tan-lap", due=-timedelta(minutes=1), overdue=False)]),
    ]
