"""The one mapping to the National Portal's sync fields (activities/portal_payload.py)."""

from __future__ import annotations

from datetime import timedelta

from activities.portal_payload import PortalPayload
from definitions.limits import MAX_PORTAL_TIMELINE_ENTRIES
from tests.store.builders import T0, make_state, portal_journey
from workflows.payloads import DossierEvent, DossierStatus, StoreWrite

ADAPTER = PortalPayload()


def change(write: StoreWrite, seq: int, status: int) -> dict:  # type: ignore[type-arg]
    event = next(e for e in write.events if e.seq == seq)
    return ADAPTER.change(write, event, status)


def test_a_receipt_says_who_what_when_and_the_appointment():
    first = portal_journey()[0]
    assert change(first, 1, 2) == {
        "MaHoSo": "HS-2026-000001",
        "MaTTHC": "1.012756",
        "TenTTHC": "Đăng ký đất đai, tài sản gắn liền với đất lần đầu",
        "MaLinhVuc": "G13-TN01",
        "KenhThucHien": 1,
        "ChuHoSo": "Nguyễn Văn A",
        "NgayNopHoSo": "2026-03-02T08:00:00+07:00",
        "NgayTiepNhan": "2026-03-02T08:00:00+07:00",
        "NgayHenTra": "2026-03-22T08:00:00+07:00",
        "TrangThaiHoSo": 2,
        "NgayKetThucXuLy": None,
        "NgayTra": None,
        "NgayTuChoi": None,
        "DonViXuLy": "bpmc-xa-xa-tan-lap",
        "QuaTrinhXuLy": [{
            "NguoiXuLy": "bpmc-xa-xa-tan-lap",
            "PhongBanXuLy": "bpmc-xa-xa-tan-lap",
            "ThoiDiemXuLy": "2026-03-02T09:00:00+07:00",
            "NoiDungXuLy": "Tiếp nhận hồ sơ",
            "TrangThai": 2,
            "NgayBatDau": "2026-03-02T09:00:00+07:00",
            "NgayKetThucTheoQuyDinh": "2026-03-22T08:00:00+07:00",
        }],
    }


def test_a_step_entry_names_the_step_its_agency_and_its_legal_due():
    third = portal_journey()[2]
    entry, = change(third, 6, 4)["QuaTrinhXuLy"]
    assert entry == {
        "NguoiXuLy": "vpdk-tinh",
        "PhongBanXuLy": "vpdk-tinh",
        "ThoiDiemXuLy": "2026-03-02T14:00:00+07:00",
        "NoiDungXuLy": "Hoàn thành xử lý: Thẩm định hồ sơ (đủ điều kiện)",
        "TrangThai": 4,
        "NgayBatDau": "2026-03-02T12:00:00+07:00",  # when the step was handed over
        "NgayKetThucTheoQuyDinh": "2026-03-02T16:00:00+07:00",
    }


def test_the_end_dates_follow_the_status_of_the_change():
    third, last = portal_journey()[2:]
    finished = change(third, 7, 9)
    assert (finished["NgayKetThucXuLy"], finished["NgayTra"]) == ("2026-03-02T15:00:00+07:00", None)
    returned = change(last, 10, 10)
    assert (returned["NgayKetThucXuLy"], returned["NgayTra"], returned["NgayTuChoi"]) == \
        ("2026-03-02T15:00:00+07:00", "2026-03-02T18:00:00+07:00", None)
    # Events before the status change in the same write do not carry the end yet.
    assert change(third, 6, 4)["NgayKetThucXuLy"] is None


def test_a_refusal_carries_its_date_a_withdrawal_does_not():
    at = T0 + timedelta(hours=1)
    for status, portal, refused in ((DossierStatus.NOT_RECEIVED, 3, True), (DossierStatus.REJECTED, 8, True),
                                    (DossierStatus.WITHDRAWN, 8, False)):
        state = make_state().model_copy(update={"status": status, "portal_status": portal, "completed_at": at,
                                                "channel": "online", "submitted_at": T0})
        event = DossierEvent(dossier_id=state.dossier_id, seq=2, kind=status.value, at=at, actor="bpmc-xa-xa-tan-lap",
                             note="thiếu giấy tờ", portal_status=portal)
        found = ADAPTER.change(StoreWrite(events=[event], state=state), event, portal)
        assert found["NgayTuChoi"] == ("2026-03-02T09:00:00+07:00" if refused else None), status
        assert found["KenhThucHien"] == 2
        assert found["NgayTiepNhan"] == (None if portal == 3 else "2026-03-02T08:00:00+07:00"), status
        assert found["QuaTrinhXuLy"][0]["NoiDungXuLy"].endswith("(thiếu giấy tờ)")


def test_a_calendar_change_updates_the_appointment_without_a_timeline_entry():
    state = make_state(progress=1)
    event = DossierEvent(dossier_id=state.dossier_id, seq=4, kind="calendar_applied", at=T0, actor="system")
    assert ADAPTER.sends(event)
    found = ADAPTER.change(StoreWrite(events=[event], state=state), event, 4)
    assert (found["NgayHenTra"], found["QuaTrinhXuLy"]) == ("2026-03-22T08:00:00+07:00", [])


def test_what_is_sent():
    def event(kind: str, portal: int | None = None) -> DossierEvent:
        return DossierEvent(dossier_id="HS-1", seq=1, kind=kind, at=T0, portal_status=portal)

    assert all(ADAPTER.sends(event(kind)) for kind in
               ("step_assigned", "step_completed", "step_returned", "extended", "calendar_applied"))
    assert ADAPTER.sends(event("received", 2)) and ADAPTER.sends(event("withdrawal_requested", 7))
    assert not any(ADAPTER.sends(event(kind)) for kind in
                   ("step_overdue", "dossier_overdue", "step_skipped", "notification_failed"))


def test_the_message_carries_the_whole_timeline_up_to_its_bound():
    payloads = [change(write, e.seq, 4) for write in portal_journey() for e in write.events if ADAPTER.sends(e)]
    message = ADAPTER.message(payloads)
    assert message["MaHoSo"] == "HS-2026-000001"
    assert [e["ThoiDiemXuLy"][11:13] for e in message["QuaTrinhXuLy"]] == \
        ["09", "10", "11", "13", "14", "15", "16", "17", "18"]
    many = ADAPTER.message(payloads * MAX_PORTAL_TIMELINE_ENTRIES)
    assert len(many["QuaTrinhXuLy"]) == MAX_PORTAL_TIMELINE_ENTRIES
    assert many["QuaTrinhXuLy"][-1] == message["QuaTrinhXuLy"][-1]  # the latest are kept


def test_a_delivered_payload_keeps_no_name():
    payload = change(portal_journey()[0], 1, 2)
    kept = ADAPTER.without_person_data(payload)
    assert kept["ChuHoSo"] is None and {k: v for k, v in kept.items() if k != "ChuHoSo"} == \
        {k: v for k, v in payload.items() if k != "ChuHoSo"}
    assert change(portal_journey(applicant=None)[0], 1, 2)["ChuHoSo"] is None


def test_the_applicant_s_name_is_read_where_the_forms_read_it():
    from workflows.payloads import applicant_name

    assert applicant_name({"applicant_name": " Lê  Văn B ", "applicant": "x"}) == "Lê Văn B"
    assert applicant_name({"applicant": "Nguyễn Văn A"}) == "Nguyễn Văn A"
    assert applicant_name({"applicant": {"name": "Trần Thị C", "address": "xã Tân Lập"}}) == "Trần Thị C"
    assert applicant_name({"applicant": {"address": "x"}, "commune": "xa-tan-lap"}) is None
    assert applicant_name({"applicant_name": 12, "applicant": ""}) is None
    assert len(applicant_name({"applicant": "A" * 1000}) or "") == 200
