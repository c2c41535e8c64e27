"""The documented request and response bodies (what /openapi.json publishes). The
inbox page and the process-control sheet are the services' own models
(services/inbox.py, services/sheet.py), the same documents the CLI prints; every
instant in an answer is in UTC (services/instants.py).

Text that reaches a dossier is refused when it carries a NUL character: PostgreSQL
cannot store one, and the projection would retry writing it forever.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from definitions.limits import MAX_NOTE_CHARS
from services.instants import UtcInstant
from workflows.payloads import DOSSIER_ID_PATTERN, Channel, DossierStatus, Outcome


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


def _check_json(value: Any) -> None:
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _check_json(item)
    elif isinstance(value, list):
        for item in value:
            _check_json(item)


Text = Annotated[str, AfterValidator(_no_nul)]
# Optional text: the length limit goes on the string itself (on `Text | None` pydantic
# counts "items"), so a too-long note is "String should have at most 2000 characters".
# Every note and reason an agency sends is bounded by MAX_NOTE_CHARS, as on the CLI.
Note = Annotated[str, Field(max_length=MAX_NOTE_CHARS), AfterValidator(_no_nul)]
StepRef = Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- requests


class SubmitDossier(_Body):
    """A dossier received by the calling one-stop desk."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "procedure": "1.012756", "dossier_id": "HS-2026-000123", "channel": "online",
        "data": {"commune": "xa-tan-lap", "area_m2": 320, "applicant": "Nguyễn Văn A"},
    }]})

    procedure: Text = Field(min_length=1, max_length=100, pattern=r"^[^/\\\s]+$",
                            description="a deployed procedure: CODE (the version in effect today) or CODE@VERSION")
    dossier_id: str = Field(pattern=DOSSIER_ID_PATTERN, description="the dossier code, unique and never reused")
    data: dict[str, Any] = Field(default_factory=dict, description="the dossier's fields; agency templates such "
                                 "as bpmc-xa-{commune} are filled from them. Never shown publicly.")
    channel: Channel = Field(default="in_person", description="an online dossier waits for your desk to receive "
                             "it (`POST /v1/dossiers/{id}/receive`) or refuse it, unless `await_receipt` is false")
    received_at: AwareDatetime | None = Field(default=None, description="with a UTC offset; default: now (for a "
                                              "dossier that waits for receipt: when it was submitted)")
    await_receipt: bool | None = Field(default=None, description="wait for your desk to receive it before its "
                                       "legal clock starts (portal status 1); default: true for online, false "
                                       "otherwise")
    result_desk: StepRef | None = Field(default=None, description="the one-stop desk where the applicant collects "
                                        "the result (Decree 118/2025 Art. 14); default: your desk")

    @field_validator("data")
    @classmethod
    def _data_text(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value)
        return value


class CompleteStepBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"outcome": "approved"},
        {"outcome": "supplement", "note": "Thiếu bản sao giấy tờ về quyền sử dụng đất"},
        {"outcome": "obligation", "note": "Lệ phí trước bạ 2.400.000 đồng"},
    ]})

    outcome: Outcome = Field(default=Outcome.APPROVED, description="approved; supplement (portal status 5) or "
                             "obligation (6: the applicant pays fees or taxes, Decree 118 Art. 24) wait for the "
                             "applicant; rejected ends the dossier")
    note: Note | None = Field(default=None, description="required for supplement, obligation (the amount and what "
                              "it is for) and rejected")


class ResubmitBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "đã bổ sung bản sao"}]})

    note: Note | None = None


class ReceiveBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "đủ thành phần hồ sơ"}]})

    note: Note | None = None


class ReasonBody(_Body):
    """A refusal at the desk (Mẫu 03) or a withdrawal (Mẫu 05): the note says why."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"note": "Thủ tục không thuộc thẩm quyền tiếp nhận của xã"},
    ]})

    note: Text = Field(min_length=1, max_length=MAX_NOTE_CHARS, description="why (it goes on the form)")


class ReturnBody(_Body):
    """Send the dossier back to an earlier step (the step's `returns_to`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"to": "tham-dinh", "note": "Chưa đạt: thiếu trích đo địa chính"},
    ]})

    to: StepRef = Field(min_length=1, description="the earlier step the dossier goes back to")
    note: Text = Field(min_length=1, max_length=MAX_NOTE_CHARS, description="why")


class ExtendBody(_Body):
    """An apology and a new appointment (phiếu xin lỗi và hẹn lại ngày trả kết quả)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"until": "2026-12-10T16:00:00+07:00", "reason": "Chờ xác định giá đất cụ thể"},
    ]})

    until: AwareDatetime = Field(description="the new due, with a UTC offset")
    reason: Text = Field(min_length=1, max_length=MAX_NOTE_CHARS, description="goes on the apology letter")
    step_id: StepRef | None = Field(default=None,
                                    description="one of your current steps; default: every late one you hold")


# ----------------------------------------------------------------------------- responses


class Receipt(BaseModel):
    """What the desk prints on the receipt (giấy tiếp nhận và hẹn trả kết quả)."""

    dossier_id: str
    procedure: str = Field(description="code@version the dossier lives by")
    procedure_name: str
    received_at: UtcInstant | None
    due_at: UtcInstant | None = Field(description="the appointment; null while the dossier waits for receipt, or "
                                    "if no worker computed it within 10 s (read the dossier later)")
    status: DossierStatus


class Holder(BaseModel):
    name: str


class PublicStatus(BaseModel):
    """An applicant's view: no dossier data, no notes, no agency codes."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "dossier_id": "HS-2026-000123", "procedure_code": "1.012756",
        "procedure_name": "Đăng ký đất đai, tài sản gắn liền với đất lần đầu",
        "status": "processing",
        "portal_status": 4, "received_at": "2026-05-26T02:00:00Z", "appointment_at": "2026-06-18T09:00:00Z",
        "completed_at": None, "held_by": [{"name": "Thuế cơ sở"}],
    }]})

    dossier_id: str
    procedure_code: str
    procedure_name: str
    status: DossierStatus
    portal_status: int = Field(description="status code of the national public-service portal")
    received_at: UtcInstant
    appointment_at: UtcInstant | None = Field(description="when the result is due to the applicant")
    completed_at: UtcInstant | None
    held_by: list[Holder] = Field(description="the agencies working on it now; empty while it waits for receipt "
                                  "or for the applicant (a supplement, a payment) and once it is finished")


class ProblemTypeDoc(BaseModel):
    type: str
    status: int
    title: str
    description: str


class AgencyInfo(BaseModel):
    """Who a token acts as."""

    code: str
    name: str
    receives_dossiers: bool
    token_id: str
    role: str = Field(default="agency", description="agency: acts for the agency; monitoring: reads reports only")
