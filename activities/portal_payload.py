"""The one mapping from lienthong's dossiers to the National Public Service Portal's
sync message (Cổng Dịch vụ công quốc gia). Everything the portal is told is decided here.

The official message schema (Circular 04/2025/TT-VPCP) is not available to us
(LEGAL.md, "U"): the field names are those provincial sync services use (LEGAL.md,
"Sync payload fields", S). When the circular's schema is published, this module is the
one place to change; the outbox, the sync and its tests do not read the fields (but
the test that checks this mapping).

What is sent, and when:

* a row is queued (store/portal_outbox.py) for every event that changes the portal
  status (TrangThaiHoSo 1-10: the event's `portal_status`), and for the events of the
  processing timeline (`TIMELINE_KINDS`: a step handed to an agency, done, or sent
  back; a new appointment; a calendar change that may move the appointment);
* a row's payload is the dossier's fields as they stand after its event, with
  TrangThaiHoSo the status after that event, and the timeline entry the event adds
  (`change`);
* the message sent for a row is that payload with the whole timeline so far
  (`message`: every entry of the dossier's rows up to it, the latest
  MAX_PORTAL_TIMELINE_ENTRIES). So each message supersedes the earlier ones: the
  portal may replace its record of the dossier with the latest it got (messages
  arrive in seq order, each once per `Idempotency-Key`).

Choices made without the official schema (say so to the portal's operators):

* instants are ISO 8601 with the Vietnamese offset (``2026-03-02T08:00:00+07:00``);
  some provincial services use ``yyyyMMddHHmmss``: change `_instant`;
* NguoiXuLy is the actor of the audit log (an agency code, ``system``, ``operator`` or
  ``applicant``): lienthong knows agencies, not their officers, so ChucDanh is not sent;
* NoiDungXuLy says what happened in Vietnamese, the step's name, and the note a desk
  or an agency wrote (the workflow's own notes are not sent);
* DonViXuLy is the receiving desk (it answers to the applicant), else the first
  step's agency; PhongBanXuLy is the agency holding the step;
* NgayTuChoi is set for a dossier refused at the desk (3) or rejected (8), not for a
  withdrawal (8 at the applicant's request);
* NgayKetThucTheoQuyDinh is a step's legal due (before any new appointment); for a
  change of the whole dossier, the dossier's legal due;
* KenhThucHien: 1 in person, 2 online, 3 postal.

Person data: ChuHoSo only, the applicant's name from the dossier's data
(`workflows.payloads.applicant_name`). It is in the outbox until the row is delivered
(`without_person_data`), and never logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from definitions.limits import MAX_PORTAL_TIMELINE_ENTRIES
from workflows.payloads import DossierEvent, DossierState, DossierStatus, PortalStatus, StepState, StoreWrite

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
TIMELINE = "QuaTrinhXuLy"
PERSON_FIELDS = ("ChuHoSo",)
CHANNELS = {"in_person": 1, "online": 2, "postal": 3}  # KenhThucHien
# Events without a status change the portal is told of. calendar_applied carries no
# timeline entry: it is sent because the appointment (NgayHenTra) may have moved.
TIMELINE_KINDS = frozenset({"step_assigned", "step_completed", "step_returned", "extended", "calendar_applied"})
WITHOUT_ENTRY = frozenset({"calendar_applied"})
# NoiDungXuLy: what happened, as the portal shows it (a step's name and a note follow).
WHAT = {
    "submitted": "Nộp hồ sơ trực tuyến",
    "received": "Tiếp nhận hồ sơ",
    "not_received": "Từ chối tiếp nhận hồ sơ",
    "step_assigned": "Chuyển xử lý",
    "step_completed": "Hoàn thành xử lý",
    "step_returned": "Trả lại bước trước",
    "supplement_requested": "Yêu cầu bổ sung hồ sơ",
    "obligation_requested": "Yêu cầu thực hiện nghĩa vụ tài chính",
    "resubmitted": "Tiếp tục xử lý sau khi bổ sung hồ sơ hoặc thực hiện nghĩa vụ tài chính",
    "withdrawal_requested": "Công dân yêu cầu rút hồ sơ",
    "withdrawn": "Dừng xử lý theo yêu cầu của công dân",
    "rejected": "Từ chối giải quyết hồ sơ",
    "result_ready": "Đã xử lý xong, chờ trả kết quả",
    "completed": "Đã trả kết quả",
    "extended": "Xin lỗi và hẹn lại ngày trả kết quả",
}
# Actors that are not an agency: their events' notes are the workflow's own bookkeeping
# (English), not what a desk or an agency wrote, and are not sent.
NOT_AGENCIES = frozenset({"system", "operator", "applicant"})
ENDED = (PortalStatus.STOPPED, PortalStatus.FINISHED, PortalStatus.RETURNED)
NOT_RECEIVED = (PortalStatus.SUBMITTED_ONLINE, PortalStatus.NOT_RECEIVED)


class PortalPayload:
    """The adapter the store's outbox calls (store.portal_outbox.PortalAdapter)."""

    def sends(self, event: DossierEvent) -> bool:
        return event.portal_status is not None or event.kind in TIMELINE_KINDS

    def change(self, write: StoreWrite, event: DossierEvent, portal_status: int) -> dict[str, Any]:
        state = write.state
        status = PortalStatus(portal_status)
        ended = status in ENDED
        received = status not in NOT_RECEIVED
        refused = status == PortalStatus.NOT_RECEIVED or (
            status == PortalStatus.STOPPED and state.status == DossierStatus.REJECTED)
        return {
            "MaHoSo": state.dossier_id,
            "MaTTHC": state.procedure_code,
            "TenTTHC": state.procedure_name,
            "MaLinhVuc": state.sector,
            "KenhThucHien": CHANNELS[state.channel],
            "ChuHoSo": write.applicant,
            "NgayNopHoSo": _instant(state.submitted_at or state.received_at),
            "NgayTiepNhan": _instant(state.received_at) if received else None,
            "NgayHenTra": _instant(state.due_at) if received else None,
            "TrangThaiHoSo": int(status),
            "NgayKetThucXuLy": _instant(state.finished_at or state.completed_at) if ended else None,
            "NgayTra": _instant(state.completed_at) if status == PortalStatus.RETURNED else None,
            "NgayTuChoi": _instant(state.completed_at) if refused else None,
            "DonViXuLy": state.received_by or next((s.agency for s in state.steps if s.agency), None),
            TIMELINE: [] if event.kind in WITHOUT_ENTRY else [_entry(state, event, status)],
        }

    @staticmethod
    def message(payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """What is POSTed for the last of `payloads` (a dossier's rows up to it, in seq
        order): its fields, and the timeline of them all."""
        entries = [entry for payload in payloads for entry in payload.get(TIMELINE, [])]
        return {**payloads[-1], TIMELINE: entries[-MAX_PORTAL_TIMELINE_ENTRIES:]}

    @staticmethod
    def without_person_data(payload: dict[str, Any]) -> dict[str, Any]:
        """A delivered row's payload as kept: the applicant's name dropped."""
        return {**payload, **dict.fromkeys(PERSON_FIELDS)}


def _entry(state: DossierState, event: DossierEvent, status: PortalStatus) -> dict[str, Any]:
    step = state.step(event.step_id) if event.step_id else None
    what = WHAT.get(event.kind, event.kind)
    if step is not None:
        what += f": {step.name}"
    if event.note and event.actor not in NOT_AGENCIES:
        what += f" ({event.note})"
    return {
        "NguoiXuLy": event.actor,
        "PhongBanXuLy": _unit(state, event, step),
        "ThoiDiemXuLy": _instant(event.at),
        "NoiDungXuLy": what,
        "TrangThai": int(status),
        "NgayBatDau": _instant(step.assigned_at if step is not None and step.assigned_at else event.at),
        "NgayKetThucTheoQuyDinh": _legal_end(state, step, status),
    }


def _unit(state: DossierState, event: DossierEvent, step: StepState | None) -> str | None:
    if step is not None and step.agency:
        return step.agency
    if event.actor is not None and event.actor not in NOT_AGENCIES:
        return event.actor
    return state.received_by


def _legal_end(state: DossierState, step: StepState | None, status: PortalStatus) -> str | None:
    if step is not None:
        return _instant(step.original_due_at or step.due_at)
    if status in NOT_RECEIVED:
        return None
    return _instant(state.original_due_at or state.due_at)


def _instant(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(VIETNAM).isoformat(timespec="seconds")
