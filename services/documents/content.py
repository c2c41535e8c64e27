"""What each form prints, built from what lienthong knows of a dossier: its state (the
workflow's or the projection's), its data (the applicant's part of the workflow input,
services/documents/fields.py), its procedure, the agencies' names and its receipt-book
entry. Pure functions, so every form can be tested without Temporal.

A form that does not apply to the dossier (yet) is refused with the reason
(`not_applicable`); everything a form prints but lienthong does not know is left blank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from definitions.durations import DURATION_PATTERN
from definitions.schema import Procedure
from services.documents.editions import Edition, FormKind
from services.documents.fields import DataFields, read_fields
from services.sheet import APPLICANT, build_sheet
from store.receipt_book import Entry
from workflows.payloads import DossierState, DossierStatus, Note

CHANNELS = {"in_person": "Trực tiếp", "online": "Trực tuyến", "postal": "Qua dịch vụ bưu chính"}
VERDICTS = {"early": "Trước hạn", "on_time": "Đúng hạn", "late": "Quá hạn"}
STATUSES = {
    DossierStatus.SUBMITTED: "Chờ tiếp nhận", DossierStatus.NOT_RECEIVED: "Không được tiếp nhận",
    DossierStatus.PROCESSING: "Đang xử lý", DossierStatus.AWAITING_SUPPLEMENT: "Chờ bổ sung hồ sơ",
    DossierStatus.AWAITING_OBLIGATION: "Chờ thực hiện nghĩa vụ tài chính",
    DossierStatus.WITHDRAWN: "Dừng xử lý theo yêu cầu", DossierStatus.REJECTED: "Dừng xử lý (từ chối)",
    DossierStatus.RESULT_READY: "Đã xử lý xong, chờ trả kết quả", DossierStatus.COMPLETED: "Đã trả kết quả",
}
NOTE_KINDS = {
    "supplement_requested": "Yêu cầu bổ sung hồ sơ", "obligation_requested": "Yêu cầu thực hiện nghĩa vụ tài chính",
    "resubmitted": "Đã bổ sung hồ sơ", "extended": "Hẹn lại ngày trả kết quả", "supplement_expired": "Hết hạn bổ sung",
    "rejected": "Từ chối giải quyết", "not_received": "Không tiếp nhận", "withdrawn": "Dừng xử lý theo yêu cầu",
    "returned": "Chuyển lại bước trước",
}
UNITS = {"d": "ngày làm việc", "h": "giờ làm việc", "m": "phút làm việc", "s": "giây"}
# The workflow's "extended" note: "new appointment ISO[ (asked ISO: moved into working time)]: reason".
EXTENDED_NOTE = re.compile(r"new appointment (?P<at>\S+?)(?: \(asked [^)]*\))?: (?P<reason>.*)", re.DOTALL)
NOT_RECEIVED_YET = (DossierStatus.SUBMITTED, DossierStatus.NOT_RECEIVED)


@dataclass(frozen=True)
class Known:
    """Everything a form may print about one dossier."""

    state: DossierState
    source: str  # workflow | projection
    desk: str | None  # the receiving desk's agency code
    data: dict[str, Any] | None  # None: the workflow input is no longer (or not) readable
    procedure: Procedure | None  # the deployed definition the dossier lives by
    agencies: dict[str, str]  # code → name
    entry: Entry | None  # receipt book
    data_missing: str | None = None  # why `data` is None


@dataclass(frozen=True)
class Printing:
    """The edition and the province's lines (settings)."""

    edition: Edition
    authority: str | None = None  # cơ quan chủ quản, the header's upper line
    place: str | None = None  # địa danh, before "ngày … tháng … năm …"


class NotApplicable(Exception):
    """The form does not apply to the dossier (yet): `str()` says why."""


def form_label(kind: FormKind, edition: Edition) -> str:
    number = edition.number_of(kind)
    return f"form {number} ({kind.value})" if number else f"the {kind.value} form"


def not_applicable(kind: FormKind, state: DossierState, edition: Edition) -> str | None:
    """Why `kind` cannot be printed for the dossier now; None when it can."""
    label, dossier, status = form_label(kind, edition), state.dossier_id, state.status
    if kind is FormKind.TRACKING_BOOK:
        return (f"{label} is a desk's book, not one dossier's: `lienthong documents book --agency DESK "
                "--from DATE --to DATE`")
    if kind in (FormKind.RECEIPT, FormKind.CONTROL_SHEET) and status in NOT_RECEIVED_YET:
        why = ("it waits for a desk to receive it" if status is DossierStatus.SUBMITTED
               else "the desk refused to receive it (print the refusal instead)")
        return f"{label} does not apply to dossier {dossier}: it was not received ({why}; status {status.value})"
    if kind is FormKind.SUPPLEMENT_REQUEST and not _notes(state, "supplement_requested"):
        return f"{label} does not apply to dossier {dossier}: no supplement was requested (status {status.value})"
    if kind is FormKind.REFUSAL and status is not DossierStatus.NOT_RECEIVED:
        return (f"{label} does not apply to dossier {dossier}: it is for a dossier the desk refused to receive, "
                f"and this one's status is {status.value}")
    if kind is FormKind.APOLOGY and not _notes(state, "extended"):
        return f"{label} does not apply to dossier {dossier}: it was given no new appointment (no extension)"
    if kind is FormKind.STOP_NOTICE and status is not DossierStatus.WITHDRAWN:
        return (f"{label} does not apply to dossier {dossier}: its processing was not stopped at the applicant's "
                f"request (status {status.value})")
    return None


def _notes(state: DossierState, kind: str) -> list[Note]:
    return sorted((n for n in state.notes if n.kind == kind), key=lambda n: n.at)


def legal_time(procedure: Procedure | None) -> str | None:
    """The procedure's legal time as printed: "03 ngày làm việc", "0,5 ngày làm việc", "4 giờ làm việc"."""
    if procedure is None:
        return None
    found = re.match(DURATION_PATTERN, procedure.deadline.strip())
    if found is None:
        return None
    amount = Decimal(found["amount"])
    shown = f"{int(amount):02d}" if amount == amount.to_integral_value() else str(amount).replace(".", ",")
    return f"{shown} {UNITS[found['unit']]}"


@dataclass
class FormContext:
    """The variables every template gets (README "Documents" lists them)."""

    kind: str
    number: str | None
    edition: str
    circular: str
    authority: str | None
    place: str | None
    printed_at: datetime
    source: str
    dossier: dict[str, Any]
    applicant: DataFields
    request: str | None
    unit: str | None  # the receiving unit's name
    legal_time: str | None
    result_place: str | None
    book: Entry | None
    extra: dict[str, Any] = field(default_factory=dict)  # the form's own part

    def variables(self) -> dict[str, Any]:
        values = dict(self.__dict__)
        values.update(values.pop("extra"))
        return values


def name_of(known: Known, code: str | None) -> str | None:
    if code is None:
        return None
    return known.agencies.get(code, code)


def build(kind: FormKind, known: Known, printing: Printing, now: datetime) -> FormContext:
    """The template variables of `kind` for the dossier; NotApplicable when it does not apply."""
    state = known.state
    reason = not_applicable(kind, state, printing.edition)
    if reason is not None:
        raise NotApplicable(reason)
    fields = read_fields(known.data)
    if known.data is None and known.data_missing:
        fields.warnings.insert(0, f"the dossier's data cannot be read ({known.data_missing}): the applicant's "
                                  "fields are left blank")
    desk = known.desk or state.received_by
    result_desk = state.result_desk or desk
    result_place: str | None
    if fields.result_delivery == "post":
        result_place = "Qua dịch vụ bưu chính" + (f": {fields.result_address}" if fields.result_address else "")
    elif fields.result_delivery == "desk" or result_desk:
        result_place = name_of(known, result_desk)
    else:
        result_place = None
    context = FormContext(
        kind=kind.value, number=printing.edition.number_of(kind), edition=printing.edition.name,
        circular=printing.edition.circular, authority=printing.authority or None, place=printing.place or None,
        printed_at=now, source=known.source, dossier=_dossier(state, known), applicant=fields,
        request=fields.request or (known.procedure.name if known.procedure else state.procedure_name),
        unit=name_of(known, desk), legal_time=legal_time(known.procedure), result_place=result_place,
        book=known.entry,
    )
    context.extra = _PARTS[kind](known)
    return context


def _dossier(state: DossierState, known: Known) -> dict[str, Any]:
    return {
        "id": state.dossier_id, "procedure_code": state.procedure_code, "procedure_version": state.procedure_version,
        "procedure_name": state.procedure_name, "sector": state.sector, "level": state.level,
        "channel": CHANNELS.get(state.channel, state.channel), "received_at": state.received_at,
        "submitted_at": state.submitted_at, "appointment": state.original_due_at, "due_at": state.due_at,
        "status": STATUSES.get(state.status, state.status.value), "portal_status": state.portal_status,
        "completed_at": state.completed_at, "finished_at": state.finished_at, "result_note": state.result_note,
        "verdict": VERDICTS.get(state.verdict or "", None), "supplement_count": state.supplement_count,
    }


def _noted(known: Known, note: Note) -> dict[str, Any]:
    step = known.state.step(note.step_id) if note.step_id else None
    return {"at": note.at, "agency": name_of(known, note.agency), "step": step.name if step else None,
            "text": note.text}


def _receipt(known: Known) -> dict[str, Any]:
    return {}


def _supplement(known: Known) -> dict[str, Any]:
    requests = _notes(known.state, "supplement_requested")
    return {"supplement": _noted(known, requests[-1]), "supplement_number": len(requests)}


def _refusal(known: Known) -> dict[str, Any]:
    refused = _notes(known.state, "not_received")
    note = refused[-1] if refused else None
    at = note.at if note else known.state.completed_at
    return {"refusal": {"at": at, "agency": name_of(known, note.agency if note else known.desk),
                        "text": note.text if note else known.state.result_note}}


def _apology(known: Known) -> dict[str, Any]:
    state = known.state
    extensions = _notes(state, "extended")
    previous: datetime | None = state.original_due_at
    for note in extensions[:-1]:
        previous = _extended(note)[0] or previous
    latest = extensions[-1]
    new_appointment, reason = _extended(latest)
    return {"apology": {**_noted(known, latest), "previous_appointment": previous,
                        "new_appointment": new_appointment, "reason": reason, "count": len(extensions)}}


def _extended(note: Note) -> tuple[datetime | None, str]:
    found = EXTENDED_NOTE.fullmatch(note.text)
    if found is None:
        return None, note.text
    try:
        return datetime.fromisoformat(found["at"]), found["reason"]
    except ValueError:
        return None, note.text


def _stop(known: Known) -> dict[str, Any]:
    stopped = _notes(known.state, "withdrawn")
    note = stopped[-1] if stopped else None
    at = note.at if note else known.state.completed_at
    return {"stop": {"at": at, "agency": name_of(known, note.agency if note else known.desk),
                     "text": note.text if note else known.state.result_note}}


def _sheet(known: Known) -> dict[str, Any]:
    sheet = build_sheet(known.state, "workflow" if known.source == "workflow" else "projection")
    rows = []
    for handover in sheet.handovers:
        sender = (f"Người nộp hồ sơ ({CHANNELS.get(sheet.channel, sheet.channel)})"
                  if handover.from_agency == APPLICANT else name_of(known, handover.from_agency))
        rows.append({"step": handover.step_name, "from": sender, "to": name_of(known, handover.to_agency),
                     "at": handover.at, "due_at": handover.due_at, "original_due_at": handover.original_due_at,
                     "completed_at": handover.completed_at, "verdict": VERDICTS.get(handover.verdict or "", None),
                     "overdue": handover.overdue, "extensions": handover.extensions,
                     "withdrawn": handover.status == "withdrawn"})
    # Lead: the first agency the dossier reaches after the receiving desk; the others co-ordinate.
    desk = name_of(known, known.desk or known.state.received_by)
    order = list(dict.fromkeys(r["to"] for r in rows if r["to"] and r["to"] != desk))
    lead, others = (order[0], order[1:]) if order else (desk, [])
    notes = [_noted(known, n) | {"kind": NOTE_KINDS.get(n.kind, n.kind)}
             for n in sorted(known.state.notes, key=lambda n: n.at)]
    return {"handovers": rows, "lead_agency": lead, "coordinating_agencies": others, "sheet_notes": notes}


_PARTS = {
    FormKind.RECEIPT: _receipt, FormKind.SUPPLEMENT_REQUEST: _supplement, FormKind.REFUSAL: _refusal,
    FormKind.APOLOGY: _apology, FormKind.STOP_NOTICE: _stop, FormKind.CONTROL_SHEET: _sheet,
}


# ----------------------------------------------------------------------------- the tracking book


@dataclass(frozen=True)
class BookLine:
    entry: Entry
    state: DossierState | None  # the projection's copy
    applicant: str | None  # from the dossier's data, when Temporal still has it


def build_book(desk: str, desk_name: str | None, first_day: Any, last_day: Any, lines: list[BookLine],
               agencies: dict[str, str], printing: Printing, now: datetime) -> dict[str, Any]:
    """The variables of the tracking book (Mẫu 07 in 03/2025, 06 in 01/2018)."""
    rows = []
    for line in lines:
        state = line.state
        handovers = []
        result = None
        if state is not None:
            for handover in build_sheet(state).handovers:
                handovers.append({"agency": agencies.get(handover.to_agency, handover.to_agency), "at": handover.at,
                                  "completed_at": handover.completed_at})
            result = {"returned_at": state.completed_at if state.status is DossierStatus.COMPLETED else None,
                      "status": STATUSES.get(state.status, state.status.value),
                      "verdict": VERDICTS.get(state.verdict or "", None)}
        rows.append({"volume": line.entry.volume, "number": line.entry.number, "dossier_id": line.entry.dossier_id,
                     "applicant": line.applicant, "procedure": state.procedure_name if state else None,
                     "received_at": line.entry.received_at,
                     "appointment": state.original_due_at if state else None,
                     "due_at": state.due_at if state else None, "handovers": handovers, "result": result})
    kind = FormKind.TRACKING_BOOK
    return {"kind": kind.value, "number": printing.edition.number_of(kind), "edition": printing.edition.name,
            "circular": printing.edition.circular, "authority": printing.authority or None,
            "place": printing.place or None, "printed_at": now, "unit": desk_name or desk, "desk": desk,
            "first_day": first_day, "last_day": last_day, "rows": rows}
