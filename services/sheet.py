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

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.instants import UtcInstant
from workflows.payloads import DossierState, StepState, StepStatus

APPLICANT = "applicant"
Source = Literal["projection", "workflow"]


class _Part(BaseModel):
    # Built by field name in code; "from" and "to" are the JSON names.
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)


class Handover(_Part):
    step_id: str
    step_name: str
    from_agency: str = Field(alias="from", description="the agency handing over, or `applicant`")
    to_agency: str = Field(alias="to", description="the agency receiving the dossier")
    at: UtcInstant = Field(description="when the receiving agency got it (the step's assigned_at)")
    due_at: UtcInstant | None = Field(description="the current due (an extension moves it)")
    original_due_at: UtcInstant | None = Field(description="the legal due the verdict is judged against")
    completed_at: UtcInstant | None
    status: str = Field(description="the step's status; `withdrawn` when the dossier ended before it was done")
    verdict: str | None = Field(description="early | on_time | late (Decision 766/QĐ-TTg), once done")
    overdue: bool
    extensions: int = Field(description="new appointments given for this step")


class SheetNote(_Part):
    at: UtcInstant
    kind: str
    agency: str | None
    step_id: str | None
    text: str


class SheetResult(_Part):
    status: str
    portal_status: int
    due_at: UtcInstant | None
    original_due_at: UtcInstant | None
    completed_at: UtcInstant | None
    verdict: str | None
    overdue: bool
    note: str | None


class Sheet(_Part):
    """The process-control sheet (phiếu kiểm soát quá trình giải quyết hồ sơ): the same
    document for `lienthong dossiers sheet` (`--json` and the printed table) and
    `GET /v1/dossiers/{id}/sheet`; instants in UTC (services/instants.py)."""

    dossier_id: str
    procedure: str = Field(description="code@version")
    procedure_name: str
    sector: str
    level: str
    channel: str
    received_at: UtcInstant
    handovers: list[Handover]
    notes: list[SheetNote]
    result: SheetResult
    source: Source = Field(description="workflow (live) or projection (stored copy)")

    def to_json(self) -> dict[str, Any]:
        """A stable object: the same keys every time, instants as UTC ISO 8601 with a Z."""
        return self.model_dump(mode="json", by_alias=True)


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
    result = SheetResult(status=state.status.value, portal_status=state.portal_status, due_at=state.due_at,
                         original_due_at=state.original_due_at, completed_at=state.completed_at,
                         verdict=state.verdict, overdue=state.overdue, note=state.result_note)
    return Sheet(
        dossier_id=state.dossier_id, procedure=f"{state.procedure_code}@{state.procedure_version}",
        procedure_name=state.procedure_name, sector=state.sector, level=state.level, channel=state.channel,
        received_at=state.received_at, handovers=handovers, notes=notes, result=result, source=source,
    )


def _step_status(st: StepState) -> str:
    # A routed step "skipped" afterwards was taken back when the dossier ended early.
    return "withdrawn" if st.status == StepStatus.SKIPPED else st.status.value


# ----------------------------------------------------------------------------- human view


def render_sheet(sheet: Sheet, when: Any) -> str:
    """`when` formats an instant in Vietnam time (the CLI's `when`)."""
    s = sheet.result
    lines = [
        "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ (process-control sheet; times in Asia/Ho_Chi_Minh)",
        f"dossier {sheet.dossier_id}: {sheet.procedure} {sheet.procedure_name}",
        f"  sector {sheet.sector}, level {sheet.level}, received {when(sheet.received_at)} ({sheet.channel})",
        "handovers:",
    ]
    rows = [("#", "STEP", "FROM", "TO", "HANDED OVER", "DUE", "COMPLETED", "STATUS", "VERDICT")]
    for number, handover in enumerate(sheet.handovers, 1):
        sender = f"{APPLICANT} ({sheet.channel})" if handover.from_agency == APPLICANT else handover.from_agency
        due = when(handover.due_at) + (" (extended)" if handover.extensions else "")
        rows.append((str(number), handover.step_id, sender, handover.to_agency, when(handover.at), due,
                     when(handover.completed_at), handover.status, handover.verdict or "-"))
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
    lines.append(f"  status {s.status} (portal status {s.portal_status}), verdict {s.verdict or '-'}"
                 f"{', OVERDUE' if s.overdue else ''}")
    due = f"  due {when(s.due_at)}"
    if s.original_due_at != s.due_at:
        due += f" (legal due {when(s.original_due_at)})"
    lines.append(due + (f", finished {when(s.completed_at)}" if s.completed_at else ""))
    if s.note:
        lines.append(f"  note: {s.note}")
    return "\n".join(lines)
