"""The process-control sheet (phiếu kiểm soát quá trình giải quyết hồ sơ) of a dossier.

One row per handover, in time order: who hands the dossier over, who receives it,
when, the step's due, when it was done and the verdict (early / on_time / late,
Decision 766/QĐ-TTg, judged against the step's legal due). Then the notes
(supplement requests, resubmissions, extensions with their reasons, rejection) and
the dossier's result.

Who hands over (kept simple, and the same for parallel branches): for the first
handover the applicant, through the receiving channel; afterwards the agency of the
step that completed most recently at or before the handover instant. Steps that
were never routed (skipped by a `when`) are not handovers.

Built from a `DossierState` only (the projection's, or the workflow's `state`
query), so it is a pure function and easy to test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from workflows.payloads import DossierState, StepState, StepStatus

APPLICANT = "applicant"
Source = Literal["projection", "workflow"]


@dataclass(frozen=True)
class Handover:
    step_id: str
    step_name: str
    from_agency: str  # APPLICANT for the first handover
    to_agency: str
    at: datetime  # when the receiving agency got it (the step's assigned_at)
    due_at: datetime | None  # current due (an extension moves it)
    original_due_at: datetime | None  # the legal due the verdict is judged against
    completed_at: datetime | None
    status: str
    verdict: str | None
    overdue: bool
    extensions: int


@dataclass(frozen=True)
class SheetNote:
    at: datetime
    kind: str
    agency: str | None
    step_id: str | None
    text: str


@dataclass(frozen=True)
class Sheet:
    dossier_id: str
    procedure: str  # code@version
    procedure_name: str
    sector: str
    level: str
    channel: str
    received_at: datetime
    handovers: list[Handover]
    notes: list[SheetNote]
    state: DossierState
    source: Source

    def to_json(self) -> dict[str, Any]:
        """A stable object: the same keys every time, instants as UTC ISO 8601."""
        s = self.state
        return {
            "dossier_id": self.dossier_id,
            "procedure": self.procedure,
            "procedure_name": self.procedure_name,
            "sector": self.sector,
            "level": self.level,
            "channel": self.channel,
            "received_at": _iso(self.received_at),
            "handovers": [
                {
                    "step_id": h.step_id,
                    "step_name": h.step_name,
                    "from": h.from_agency,
                    "to": h.to_agency,
                    "at": _iso(h.at),
                    "due_at": _iso(h.due_at),
                    "original_due_at": _iso(h.original_due_at),
                    "completed_at": _iso(h.completed_at),
                    "status": h.status,
                    "verdict": h.verdict,
                    "overdue": h.overdue,
                    "extensions": h.extensions,
                }
                for h in self.handovers
            ],
            "notes": [
                {"at": _iso(n.at), "kind": n.kind, "agency": n.agency, "step_id": n.step_id, "text": n.text}
                for n in self.notes
            ],
            "result": {
                "status": s.status.value,
                "portal_status": s.portal_status,
                "due_at": _iso(s.due_at),
                "original_due_at": _iso(s.original_due_at),
                "completed_at": _iso(s.completed_at),
                "verdict": s.verdict,
                "overdue": s.overdue,
                "note": s.result_note,
            },
            "source": self.source,
        }


def build_sheet(state: DossierState, source: Source = "projection") -> Sheet:
    position = {st.id: index for index, st in enumerate(state.steps)}
    routed = sorted((st for st in state.steps if st.assigned_at is not None and st.agency),
                    key=lambda st: (st.assigned_at, position[st.id]))
    done = [st for st in state.steps if st.status == StepStatus.COMPLETED and st.completed_at is not None]
    handovers = []
    for st in routed:
        assert st.assigned_at is not None and st.agency is not None
        before = [d for d in done if d.id != st.id and d.completed_at <= st.assigned_at]  # type: ignore[operator]
        previous = max(before, key=lambda d: (d.completed_at, position[d.id]), default=None)
        handovers.append(Handover(
            step_id=st.id, step_name=st.name,
            from_agency=(previous.agency or APPLICANT) if previous is not None else APPLICANT,
            to_agency=st.agency, at=st.assigned_at, due_at=st.due_at, original_due_at=st.original_due_at,
            completed_at=st.completed_at, status=_step_status(st), verdict=st.verdict, overdue=st.overdue,
            extensions=st.extensions,
        ))
    notes = [SheetNote(at=n.at, kind=n.kind, agency=n.agency, step_id=n.step_id, text=n.text)
             for n in sorted(state.notes, key=lambda n: n.at)]
    return Sheet(
        dossier_id=state.dossier_id, procedure=f"{state.procedure_code}@{state.procedure_version}",
        procedure_name=state.procedure_name, sector=state.sector, level=state.level, channel=state.channel,
        received_at=state.received_at, handovers=handovers, notes=notes, state=state, source=source,
    )


def _step_status(st: StepState) -> str:
    # A routed step "skipped" afterwards was taken back when the dossier ended early.
    return "withdrawn" if st.status == StepStatus.SKIPPED else st.status.value


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at else None


# ----------------------------------------------------------------------------- human view


def render_sheet(sheet: Sheet, when: Any) -> str:
    """`when` formats an instant in Vietnam time (the CLI's `when`)."""
    s = sheet.state
    lines = [
        "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ (process-control sheet; times in Asia/Ho_Chi_Minh)",
        f"dossier {sheet.dossier_id}: {sheet.procedure} {sheet.procedure_name}",
        f"  sector {sheet.sector}, level {sheet.level}, received {when(sheet.received_at)} ({sheet.channel})",
        "handovers:",
    ]
    rows = [("#", "STEP", "FROM", "TO", "HANDED OVER", "DUE", "COMPLETED", "VERDICT")]
    for number, handover in enumerate(sheet.handovers, 1):
        sender = f"{APPLICANT} ({sheet.channel})" if handover.from_agency == APPLICANT else handover.from_agency
        due = when(handover.due_at) + (" (extended)" if handover.extensions else "")
        rows.append((str(number), handover.step_id, sender, handover.to_agency, when(handover.at), due,
                     when(handover.completed_at) if handover.completed_at else handover.status,
                     handover.verdict or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    handovers: list[Handover | None] = [None, *sheet.handovers]
    for row, h in zip(rows, handovers):
        line = "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths))
        if h is not None and h.overdue:
            line += "  OVERDUE"
        lines.append(line.rstrip())
    if len(rows) == 1:
        lines.append("  (not handed to any agency yet)")
    if sheet.notes:
        lines.append("notes:")
        for n in sheet.notes:
            who = ", ".join(part for part in (n.agency, f"step {n.step_id}" if n.step_id else None) if part)
            lines.append(f"  {when(n.at)}  {n.kind.replace('_', ' ')}{f' ({who})' if who else ''}"
                         f"{f': {n.text}' if n.text else ''}")
    lines.append("result:")
    lines.append(f"  status {s.status.value} (portal status {s.portal_status}), verdict {s.verdict or '-'}"
                 f"{', OVERDUE' if s.overdue else ''}")
    due = f"  due {when(s.due_at)}"
    if s.original_due_at != s.due_at:
        due += f" (legal due {when(s.original_due_at)})"
    lines.append(due + (f", finished {when(s.completed_at)}" if s.completed_at else ""))
    if s.result_note:
        lines.append(f"  note: {s.result_note}")
    return "\n".join(lines)
