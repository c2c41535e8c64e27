"""The process-control sheet (phiếu kiểm soát quá trình giải quyết hồ sơ) of a dossier.

One row per handover, in time order: who hands the dossier over, who receives it,
when, the step's due, when it was done and the verdict (early / on_time / late,
Decision 766/QĐ-TTg, judged against the step's legal due). Then the notes
(supplement requests, resubmissions, extensions with their reasons, rejection) and
the dossier's result.

Who hands over (kept simple, and the same for parallel branches): for the first
handover the applicant, through the receiving channel; afterwards the agency of the
step that completed (or sent the dossier back) most recently at or before the
handover instant. Steps that were never routed (skipped by a `when`) are not
handovers. A return to an earlier step keeps what happened before: the steps it
went back over stay on the sheet as earlier passes (`earlier_pass`), the returning
one with status `returned`, before the steps handed over again.

The receiving desk (`received_by`, which may not be the competent agency: Decree
118/2025 Art. 14) and the desk returning the result (`result_desk`) are on the
sheet with the competent agencies of the handovers, and `portal_history` lists each
portal status the dossier went through (LEGAL.md's ten codes) with its instant.

Built from a `DossierState` only (the projection's, or the workflow's `state`
query), so it is a pure function and easy to test.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.instants import UtcInstant
from workflows.payloads import DossierState, PortalStatus, StepState, StepStatus

APPLICANT = "applicant"
Source = Literal["projection", "workflow"]
# Tên trạng thái of the National Public Service Portal (TrangThaiHoSo, LEGAL.md).
PORTAL_STATUS_NAMES: dict[int, str] = {
    PortalStatus.SUBMITTED_ONLINE: "Mới đăng ký trực tuyến",
    PortalStatus.RECEIVED: "Đã tiếp nhận",
    PortalStatus.NOT_RECEIVED: "Không được tiếp nhận",
    PortalStatus.IN_PROGRESS: "Đang xử lý",
    PortalStatus.SUPPLEMENT_REQUESTED: "Yêu cầu bổ sung giấy tờ",
    PortalStatus.OBLIGATION_REQUESTED: "Yêu cầu thực hiện nghĩa vụ tài chính",
    PortalStatus.WITHDRAWAL_REQUESTED: "Công dân yêu cầu rút hồ sơ",
    PortalStatus.STOPPED: "Dừng xử lý",
    PortalStatus.FINISHED: "Đã xử lý xong",
    PortalStatus.RETURNED: "Đã trả kết quả",
}
# A step that ended in one of these handed the dossier on (to the next step, or back).
HANDING_OVER = (StepStatus.COMPLETED, StepStatus.RETURNED)
# The notes that change the portal status, and to which.
_NOTE_PORTAL = {"supplement_requested": PortalStatus.SUPPLEMENT_REQUESTED,
                "obligation_requested": PortalStatus.OBLIGATION_REQUESTED,
                "resubmitted": PortalStatus.IN_PROGRESS,
                "withdrawn": PortalStatus.WITHDRAWAL_REQUESTED}


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
    status: str = Field(description="the step's status; `withdrawn` when the dossier ended before it was done, "
                                    "`returned` when it sent the dossier back to an earlier step")
    verdict: str | None = Field(description="early | on_time | late (Decision 766/QĐ-TTg), once done")
    overdue: bool
    extensions: int = Field(description="new appointments given for this step")
    earlier_pass: bool = Field(default=False, description="a pass a return to an earlier step went back over "
                                                          "(the step was handed over again after it)")


class SheetNote(_Part):
    at: UtcInstant
    kind: str
    agency: str | None
    step_id: str | None
    text: str


class PortalChange(_Part):
    portal_status: int = Field(description="status code of the national public-service portal (1-10)")
    name: str = Field(description="its name on the portal")
    at: UtcInstant


class SheetResult(_Part):
    status: str
    portal_status: int
    due_at: UtcInstant | None
    original_due_at: UtcInstant | None
    finished_at: UtcInstant | None = Field(default=None, description="processing finished, the result at the desk "
                                           "(portal status 9): the end time the verdict is judged at")
    completed_at: UtcInstant | None = Field(description="when it ended: result returned, stopped or refused")
    verdict: str | None
    overdue: bool
    note: str | None
    supplement_count: int = 0
    obligation_count: int = 0
    return_count: int = 0


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
    submitted_at: UtcInstant | None = Field(default=None, description="submitted online (or checked before "
                                            "receipt): when it started waiting for a desk")
    received_at: UtcInstant = Field(description="when the desk received it (not received yet: when submitted)")
    received_by: str | None = Field(default=None, description="the receiving desk (Art. 14: any desk of the "
                                    "province for the procedures it may receive), or the desk an online "
                                    "dossier is addressed to")
    result_desk: str | None = Field(default=None, description="where the result is returned to the applicant")
    portal_history: list[PortalChange] = Field(default_factory=list,
                                               description="each portal status it went through, in order")
    handovers: list[Handover]
    notes: list[SheetNote]
    result: SheetResult
    source: Source = Field(description="workflow (live) or projection (stored copy)")

    def to_json(self) -> dict[str, Any]:
        """A stable object: the same keys every time, instants as UTC ISO 8601 with a Z."""
        return self.model_dump(mode="json", by_alias=True)


def build_sheet(state: DossierState, source: Source = "projection") -> Sheet:
    position = {st.id: index for index, st in enumerate(state.steps)}
    # Earlier passes first at an equal instant: they were handed over before the pass that replaced them.
    passes = [(st, True) for st in state.earlier_passes] + [(st, False) for st in state.steps]
    routed = sorted(((st, earlier) for st, earlier in passes if st.assigned_at is not None and st.agency),
                    key=lambda pair: (pair[0].assigned_at, not pair[1], position.get(pair[0].id, 0)))
    ended = {id(st): at for st, _ in passes if (at := _ended_at(st, state)) is not None}
    handovers = []
    for st, earlier in routed:
        assert st.assigned_at is not None and st.agency is not None
        before = [(at, position.get(d.id, 0), d) for d, _ in passes
                  if d is not st and d.status in HANDING_OVER and (at := ended.get(id(d))) is not None
                  and at <= st.assigned_at]
        previous = max(before, key=lambda entry: entry[:2], default=None)
        handovers.append(Handover(
            step_id=st.id, step_name=st.name,
            from_agency=(previous[2].agency or APPLICANT) if previous is not None else APPLICANT,
            to_agency=st.agency, at=st.assigned_at, due_at=st.due_at, original_due_at=st.original_due_at,
            completed_at=ended.get(id(st)), status=_step_status(st), verdict=st.verdict, overdue=st.overdue,
            extensions=st.extensions, earlier_pass=earlier,
        ))
    notes = [SheetNote(at=n.at, kind=n.kind, agency=n.agency, step_id=n.step_id, text=n.text)
             for n in sorted(state.notes, key=lambda n: n.at)]
    result = SheetResult(status=state.status.value, portal_status=state.portal_status, due_at=state.due_at,
                         original_due_at=state.original_due_at, finished_at=state.finished_at,
                         completed_at=state.completed_at, verdict=state.verdict, overdue=state.overdue,
                         note=state.result_note, supplement_count=state.supplement_count,
                         obligation_count=state.obligation_count, return_count=state.return_count)
    return Sheet(
        dossier_id=state.dossier_id, procedure=f"{state.procedure_code}@{state.procedure_version}",
        procedure_name=state.procedure_name, sector=state.sector, level=state.level, channel=state.channel,
        submitted_at=state.submitted_at, received_at=state.received_at, received_by=state.received_by,
        result_desk=state.result_desk, portal_history=portal_history(state), handovers=handovers, notes=notes,
        result=result, source=source,
    )


def _ended_at(st: StepState, state: DossierState) -> datetime | None:
    """When a pass ended: done, or sent the dossier back (the return's note: the first
    `returned` note of the step from its hand-over on)."""
    if st.status == StepStatus.RETURNED and st.assigned_at is not None:
        return min((n.at for n in state.notes if n.kind == "returned" and n.step_id == st.id
                    and n.at >= st.assigned_at), default=None)
    return st.completed_at


def portal_history(state: DossierState) -> list[PortalChange]:
    """The portal statuses the dossier went through, each with its instant, read from
    the state (the audit log has the same changes as events with `portal_status`):
    1 submitted, 2 received, 4 from the first hand-over, 5/6/4/7 from the notes, 9 when
    processing finished, then 3, 8 or 10 when it ended."""
    changes: list[tuple[datetime, int]] = []
    if state.submitted_at is not None:
        changes.append((state.submitted_at, PortalStatus.SUBMITTED_ONLINE))
    if state.received:
        changes.append((state.received_at, PortalStatus.RECEIVED))
        handed = [st.assigned_at for st in (*state.earlier_passes, *state.steps) if st.assigned_at is not None]
        if handed:
            changes.append((min(handed), PortalStatus.IN_PROGRESS))
    changes += [(n.at, _NOTE_PORTAL[n.kind]) for n in state.notes if n.kind in _NOTE_PORTAL]
    if state.finished_at is not None:
        changes.append((state.finished_at, PortalStatus.FINISHED))
    if state.finished and state.completed_at is not None:
        changes.append((state.completed_at, state.portal_status))
    # Stable: at one instant, in the order the life cycle goes (received before in progress...).
    changes.sort(key=lambda change: change[0])
    return [PortalChange(portal_status=int(code), name=PORTAL_STATUS_NAMES[code], at=at) for at, code in changes]


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
    ]
    if sheet.submitted_at is not None:
        lines.append(f"  submitted {when(sheet.submitted_at)}" + {
            "submitted": ", waiting for a desk to receive it",
            "not_received": ", refused at the desk: never received"}.get(s.status, ""))
    desks = [f"received by {sheet.received_by}" if sheet.received_by else "",
             f"result returned at {sheet.result_desk}" if sheet.result_desk else ""]
    if any(desks):
        lines.append("  " + "; ".join(part for part in desks if part))
    lines.append("handovers:")
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
        if h is not None and h.earlier_pass:
            line += "  EARLIER PASS"
        lines.append(line.rstrip())
    if len(rows) == 1:
        lines.append("  (not handed to any agency yet)")
    if sheet.notes:
        lines.append("notes:")
        for n in sheet.notes:
            who = ", ".join(part for part in (n.agency, f"step {n.step_id}" if n.step_id else None) if part)
            lines.append(f"  {when(n.at)}  {n.kind.replace('_', ' ')}{f' ({who})' if who else ''}"
                         f"{f': {n.text}' if n.text else ''}")
    if sheet.portal_history:
        lines.append("portal status:")
        lines += [f"  {when(c.at)}  {c.portal_status:>2} {c.name}" for c in sheet.portal_history]
    lines.append("result:")
    lines.append(f"  status {s.status} (portal status {s.portal_status}), verdict {s.verdict or '-'}"
                 f"{', OVERDUE' if s.overdue else ''}")
    due = f"  due {when(s.due_at)}"
    if s.original_due_at != s.due_at:
        due += f" (legal due {when(s.original_due_at)})"
    if s.finished_at is not None and s.finished_at != s.completed_at:
        due += f", processing finished {when(s.finished_at)}"
    lines.append(due + (f", finished {when(s.completed_at)}" if s.completed_at else ""))
    if s.note:
        lines.append(f"  note: {s.note}")
    return "\n".join(lines)
