"""What `DossierWorkflow` exchanges with the world: its input, updates, query state.

Pure pydantic models: imported by workflow code, activities, the CLI and tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from definitions.calendar import CalendarSnapshot, Verdict
from definitions.limits import MAX_NOTE_CHARS, MAX_STEPS
from definitions.schema import ProcedureSnapshot


class DossierStatus(StrEnum):
    SUBMITTED = "submitted"  # nộp trực tuyến, chờ tiếp nhận: waits for a desk to receive it
    NOT_RECEIVED = "not_received"  # từ chối tiếp nhận (Mẫu 03): refused at the desk, never received
    PROCESSING = "processing"
    AWAITING_SUPPLEMENT = "awaiting_supplement"  # chờ bổ sung: the applicant's turn
    AWAITING_OBLIGATION = "awaiting_obligation"  # chờ thực hiện nghĩa vụ tài chính: the applicant pays
    WITHDRAWN = "withdrawn"  # rút hồ sơ / dừng theo yêu cầu (Art. 21, Mẫu 05)
    REJECTED = "rejected"
    RESULT_READY = "result_ready"  # đã xử lý xong: the result waits at the desk
    COMPLETED = "completed"  # đã trả kết quả: the result reached the applicant


# In progress (Biểu 06 columns 11-13; the overdue gauges): received, not yet decided.
OPEN_STATUSES = (DossierStatus.PROCESSING, DossierStatus.AWAITING_SUPPLEMENT, DossierStatus.AWAITING_OBLIGATION)
# The applicant holds the dossier: every clock is stopped (Decision 4).
PAUSED_STATUSES = (DossierStatus.AWAITING_SUPPLEMENT, DossierStatus.AWAITING_OBLIGATION)
# The audit-log event (and sheet note) that opens each of the applicant's turns.
APPLICANT_TURN_OPENED_BY = {DossierStatus.AWAITING_SUPPLEMENT: "supplement_requested",
                            DossierStatus.AWAITING_OBLIGATION: "obligation_requested"}
# Ended: the workflow takes no more changes.
FINISHED_STATUSES = (DossierStatus.COMPLETED, DossierStatus.REJECTED, DossierStatus.WITHDRAWN,
                     DossierStatus.NOT_RECEIVED)
# Processing ended (Decision 766's end time): judged, counted as resolved.
RESOLVED_STATUSES = (DossierStatus.RESULT_READY, DossierStatus.COMPLETED, DossierStatus.REJECTED,
                     DossierStatus.WITHDRAWN)


class PortalStatus(IntEnum):
    """Status codes of the National Public Service Portal (TrangThaiHoSo, LEGAL.md)."""

    SUBMITTED_ONLINE = 1  # mới đăng ký trực tuyến
    RECEIVED = 2  # đã tiếp nhận
    NOT_RECEIVED = 3  # không được tiếp nhận
    IN_PROGRESS = 4  # đang xử lý
    SUPPLEMENT_REQUESTED = 5  # yêu cầu bổ sung giấy tờ
    OBLIGATION_REQUESTED = 6  # yêu cầu thực hiện nghĩa vụ tài chính
    WITHDRAWAL_REQUESTED = 7  # công dân yêu cầu rút hồ sơ
    STOPPED = 8  # dừng xử lý
    FINISHED = 9  # đã xử lý xong
    RETURNED = 10  # đã trả kết quả


# The portal status a dossier shows in each of its statuses (2 and 7 are moments on
# the way: receipt before the first hand-over, a withdrawal request before the stop).
PORTAL_STATUS: dict[DossierStatus, int] = {
    DossierStatus.SUBMITTED: PortalStatus.SUBMITTED_ONLINE,
    DossierStatus.NOT_RECEIVED: PortalStatus.NOT_RECEIVED,
    DossierStatus.PROCESSING: PortalStatus.IN_PROGRESS,
    DossierStatus.AWAITING_SUPPLEMENT: PortalStatus.SUPPLEMENT_REQUESTED,
    DossierStatus.AWAITING_OBLIGATION: PortalStatus.OBLIGATION_REQUESTED,
    DossierStatus.WITHDRAWN: PortalStatus.STOPPED,
    DossierStatus.REJECTED: PortalStatus.STOPPED,
    DossierStatus.RESULT_READY: PortalStatus.FINISHED,
    DossierStatus.COMPLETED: PortalStatus.RETURNED,
}


class StepStatus(StrEnum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    RETURNED = "returned"  # sent the dossier back to an earlier step (an earlier pass, on the sheet)


class Outcome(StrEnum):
    APPROVED = "approved"
    SUPPLEMENT = "supplement"  # the applicant must supplement documents
    OBLIGATION = "obligation"  # the applicant must pay (fees, land tax...) before work goes on
    REJECTED = "rejected"


Channel = Literal["in_person", "online", "postal"]
# A dossier's code (mã hồ sơ): unique, never reused, and part of URLs (no slashes or spaces).
MAX_DOSSIER_ID = 200
DOSSIER_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_DOSSIER_ID - 1}}}$"
DOSSIER_ID_RULE = (f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {MAX_DOSSIER_ID} "
                   "(e.g. HS-2026-000123)")
DossierId = Annotated[str, StringConstraints(pattern=DOSSIER_ID_PATTERN)]


class DossierInput(BaseModel):
    """Start input: the definition snapshot a dossier lives by, and its data."""

    dossier_id: DossierId
    snapshot: ProcedureSnapshot
    data: dict[str, Any] = Field(default_factory=dict)
    channel: Channel = "in_person"
    received_at: AwareDatetime | None = Field(
        default=None, description="when the desk received it; default: when the workflow starts"
    )
    received_by: str | None = Field(
        default=None, description="agency code of the receiving desk (for an online dossier: the desk it is "
                                  "addressed to, until a desk receives it)")
    await_receipt: bool | None = Field(
        default=None, description="wait for a desk to receive it (status 1) before its clock starts; "
                                  "default: yes for an online dossier, no otherwise")
    result_desk: str | None = Field(
        default=None, description="the desk where the applicant collects the result (Art. 14), "
                                  "default: the receiving desk")
    calendar: CalendarSnapshot = Field(description="the working-time calendar, resolved at submission")
    webhook_agencies: list[str] = Field(
        default_factory=list, max_length=MAX_STEPS * 2,
        description="this dossier's agencies (steps and escalations) that have a webhook, at submission")

    @property
    def awaits_receipt(self) -> bool:
        """Whether it starts waiting for a desk to receive it (status 1), as the workflow decides."""
        return self.await_receipt if self.await_receipt is not None else self.channel == "online"


class Note(BaseModel):
    """A line of the process-control sheet that is not a handover."""

    at: datetime
    kind: Literal["supplement_requested", "obligation_requested", "resubmitted", "extended", "supplement_expired",
                  "rejected", "not_received", "withdrawn", "returned"]
    agency: str | None = None
    step_id: str | None = None
    text: str


class StepState(BaseModel):
    id: str
    name: str
    agency: str | None = None  # resolved from the template once the step is reached
    escalate_to: str | None = None
    deadline: str
    status: StepStatus = StepStatus.PENDING
    assigned_at: datetime | None = None
    due_at: datetime | None = None
    original_due_at: datetime | None = None
    extendable_until: datetime | None = None  # the last instant a new appointment may be asked (Mẫu 04)
    original_due_day_start: datetime | None = None
    due_basis: DueBasis | None = None
    original_due_basis: DueBasis | None = None
    completed_at: datetime | None = None
    outcome: Outcome | None = None
    note: str | None = None
    verdict: Verdict | None = None
    overdue: bool = False  # a due (original or extended) passed before completion; stays set
    escalations: int = 0
    extensions: int = 0


class DossierState(BaseModel):
    """The `state` query: everything an operator or the projection needs."""

    dossier_id: str
    procedure_code: str
    procedure_version: int
    procedure_name: str
    content_hash: str
    sector: str
    level: str
    calendar: str
    channel: Channel
    status: DossierStatus = DossierStatus.PROCESSING
    portal_status: int = PORTAL_STATUS[DossierStatus.PROCESSING]
    # When the desk received it; for an online dossier not received yet, when it was submitted.
    received_at: datetime
    submitted_at: datetime | None = None  # an online (or postal) submission waiting for receipt
    received_by: str | None = None  # the receiving desk (it may not be the competent agency: Art. 14)
    result_desk: str | None = None  # where the result is returned
    clock_started_at: datetime | None = None
    due_at: datetime | None = None
    original_due_at: datetime | None = None
    original_due_day_start: datetime | None = None
    due_basis: DueBasis | None = None
    original_due_basis: DueBasis | None = None
    overdue: bool = False
    verdict: Verdict | None = None
    completed_at: datetime | None = None  # when it ended (returned, stopped, refused)
    finished_at: datetime | None = None  # status 9: processing finished, the instant Decision 766 judges
    result_note: str | None = None
    supplement_count: int = 0
    obligation_count: int = 0
    return_count: int = 0  # steps sent back to an earlier step
    extensions: int = 0  # new appointments given (Mẫu 04), per dossier
    paused_at: datetime | None = None
    supplement_due_at: datetime | None = None
    steps: list[StepState] = Field(default_factory=list)
    # Earlier passes of steps a return sent the dossier back over (bounded by the
    # procedure's max_returns): what happened before stays on the sheet.
    earlier_passes: list[StepState] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)
    last_event_seq: int = 0  # the audit-log event this state follows (projection ordering)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def received(self) -> bool:
        """Received by a desk: counted in every figure (a refused or unreceived one is not)."""
        return self.status not in (DossierStatus.SUBMITTED, DossierStatus.NOT_RECEIVED)

    @property
    def current_agencies(self) -> list[str]:
        return sorted({s.agency for s in self.steps if s.status == StepStatus.ASSIGNED and s.agency})

    def step(self, step_id: str) -> StepState | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def involves(self, agency: str) -> bool:
        """Whether `agency` has or had a step on the dossier, or was escalated to (the
        receiving desk is known beside the state: `services.dossiers.Found`)."""
        return any(st.agency == agency or (st.escalate_to == agency and st.escalations > 0) for st in self.steps)


class CompleteStep(BaseModel):
    """An agency reports its step done. `outcome` is checked by the validator, so an
    unknown value is refused with a reason instead of failing deserialisation."""

    model_config = ConfigDict(str_strip_whitespace=True)

    step_id: str
    agency: str
    outcome: str = Outcome.APPROVED.value
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class Resubmit(BaseModel):
    """The applicant supplemented the documents or paid the financial obligation, relayed
    by `agency` (the desk or the agency that received them): it is the change's actor in
    the audit log."""

    agency: str = Field(min_length=1, max_length=MAX_DOSSIER_ID)
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class DeskAction(BaseModel):
    """A desk receives an online dossier, refuses it (Mẫu 03), or records the applicant's
    withdrawal (Mẫu 05). Refusal and withdrawal need a note saying why."""

    model_config = ConfigDict(str_strip_whitespace=True)

    agency: str = Field(min_length=1, max_length=MAX_DOSSIER_ID)
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class ReturnStep(BaseModel):
    """An agency sends the dossier back to an earlier step (its procedure's `returns_to`)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    step_id: str
    agency: str
    to: str
    note: str = Field(max_length=MAX_NOTE_CHARS)


class Extend(BaseModel):
    """Apology and new appointment (phiếu xin lỗi và hẹn lại ngày trả kết quả)."""

    agency: str
    new_due: AwareDatetime
    reason: str = Field(max_length=MAX_NOTE_CHARS)
    step_id: str | None = None


# --- what an Update answers, and the result --------------------------------


class ChangeAnswer(BaseModel):
    """An accepted change: what the caller needs, not the whole state (the `state` query
    has that). Small and bounded, since Temporal keeps it in history. The change is
    durable in Temporal once answered; its store write follows (retried until taken)."""

    dossier_id: str
    seq: int  # the audit-log event that recorded the change
    status: DossierStatus
    portal_status: int
    due_at: datetime | None = None  # the dossier's appointment
    step_id: str | None = None
    step_status: StepStatus | None = None
    step_due_at: datetime | None = None


class DossierResult(BaseModel):
    """The workflow's result: how the dossier ended (the state query has the rest)."""

    dossier_id: str
    status: DossierStatus
    portal_status: int
    verdict: Verdict | None = None
    completed_at: datetime | None = None
    last_event_seq: int


class DueBasis(BaseModel):
    """How a due was computed: `working` time counted from `start`. Kept so a
    calendar change (a newly announced day off) can recompute the due."""

    start: datetime
    working: timedelta


class Due(BaseModel):
    """A due instant, with what the workflow needs to judge it."""

    due_at: datetime
    due_day_start: datetime  # local midnight of the due day: before it is "early"
    extendable_until: datetime  # one working day before the due: the last moment to extend it
    basis: DueBasis | None = None  # None for an appointment a person gave (an extension)


class ApplyCalendar(BaseModel):
    """An operator changed a calendar file: recompute this dossier's dues on its new snapshot."""

    calendar: str
    snapshot: CalendarSnapshot
    reason: str = Field(default="calendar changed", max_length=MAX_NOTE_CHARS)




class Routing(BaseModel):
    """A step handed to an agency (or taken back from it)."""

    dossier_id: str
    procedure_code: str
    procedure_version: int
    sector: str
    step_id: str
    step_name: str
    agency: str
    assigned_at: datetime
    due_at: datetime
    reason: Literal["assigned", "resumed", "withdrawn"] = "assigned"


class AgencyNotification(BaseModel):
    """What an agency's system is told by webhook (if it has one)."""

    kind: Literal["step_assigned", "step_resumed", "step_withdrawn", "escalation"]
    agency: str  # the recipient
    dossier_id: str
    procedure_code: str
    procedure_version: int
    sector: str
    step_id: str
    step_name: str
    due_at: datetime | None = None
    at: datetime
    responsible_agency: str | None = None  # for an escalation: whose step is late


class DossierEvent(BaseModel):
    """One transition for the audit log; `seq` orders and de-duplicates them. It
    carries what happened, not a copy of the state."""

    dossier_id: str
    seq: int
    kind: str
    at: datetime
    actor: str | None = None  # agency code, "applicant" or "system"
    step_id: str | None = None
    note: str | None = None
    portal_status: int | None = None  # set when the dossier's portal status changed with this event


class StoreWrite(BaseModel):
    """One activation's changes, written by one local activity in one transaction: its
    audit-log events, the projection moved forward to `state` (only the `steps` that
    changed are rewritten) and the agencies' inbox changes. Idempotent: events are
    keyed by (dossier, seq) and the projection only moves forward, so a write repeated
    after a worker died changes nothing. A local activity's input is not kept in
    Temporal's history, so the state here costs no history bytes."""

    events: list[DossierEvent] = Field(min_length=1)
    state: DossierState
    steps: list[str] = Field(default_factory=list)  # ids of the step rows to rewrite
    routings: list[Routing] = Field(default_factory=list)
    # The applicant's name from the dossier's data (`applicant_name`), for the National
    # Portal's outbox (ChuHoSo) only: the projection and the audit log never hold it.
    applicant: str | None = None


# Where a dossier's data names the applicant (chủ hồ sơ), first found wins: the same
# fields the printed forms read (services/documents/fields.py).
APPLICANT_FIELDS = ("applicant_name", "applicant", "applicant.name")
MAX_APPLICANT_CHARS = 200  # a person's or an organisation's name, as the portal takes it


def applicant_name(data: dict[str, Any]) -> str | None:
    """The applicant's name in `data`: the first of APPLICANT_FIELDS holding text."""
    for path in APPLICANT_FIELDS:
        first, _, rest = path.partition(".")
        value = data.get(first)
        if rest:
            value = value.get(rest) if isinstance(value, dict) else None
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:MAX_APPLICANT_CHARS]
    return None
