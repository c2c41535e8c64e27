"""`lienthong inbox` and the process-control sheet (`dossiers sheet`), without Temporal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.sheet import APPLICANT, build_sheet, render_sheet
from store import inbox, projection
from tests.workers.conftest import Cli
from workers.commands_calendars import moved_dues
from workers.commands_common import when
from workflows.payloads import (
    PORTAL_STATUS,
    DossierState,
    DossierStatus,
    Note,
    Outcome,
    Routing,
    StepState,
    StepStatus,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=HCM)  # Monday 08:00 in Vietnam
DESK = "bpmc-xa-xa-tan-lap"


def routing(dossier_id: str, step_id: str, agency: str, due_at: datetime) -> Routing:
    return Routing(dossier_id=dossier_id, procedure_code="1.012756", procedure_version=1, sector="G13-TN01",
                   step_id=step_id, step_name=f"Bước {step_id}", agency=agency, assigned_at=T0, due_at=due_at)


# ----------------------------------------------------------------------------- inbox


def test_inbox_lists_open_items_by_due(cli: Cli) -> None:
    cli.ok("definitions", "deploy")
    now = datetime.now(UTC)
    with cli.sessions().begin() as session:
        inbox.add_item(session, routing("HS-LATER", "tham-dinh", "vpdk-tinh", now + timedelta(days=3)))
        inbox.add_item(session, routing("HS-LATE", "tham-dinh", "vpdk-tinh", now - timedelta(hours=2)))
        inbox.add_item(session, routing("HS-SOON", "cap-nhat-ho-so-dia-chinh", "vpdk-tinh", now + timedelta(hours=5)))
        inbox.add_item(session, routing("HS-OTHER", "tiep-nhan", DESK, now + timedelta(hours=1)))
        inbox.add_item(session, routing("HS-DONE", "tham-dinh", "vpdk-tinh", now + timedelta(days=1)))
        inbox.remove_item(session, "vpdk-tinh", "HS-DONE", "tham-dinh")  # completed: out of the inbox

    out = cli.ok("inbox", "vpdk-tinh").splitlines()
    assert out[0].startswith("inbox of vpdk-tinh (Văn phòng Đăng ký đất đai")
    assert out[1].split() == ["DOSSIER", "PROCEDURE", "STEP", "RECEIVED-BY", "ASSIGNED", "DUE"]
    rows = out[2:-1]
    assert [row.split()[0] for row in rows] == ["HS-LATE", "HS-SOON", "HS-LATER"]
    assert rows[0].endswith("OVERDUE") and not rows[1].endswith("OVERDUE")
    assert "1.012756@1" in rows[0] and "2026-03-02 08:00" in rows[0]  # assigned, in Vietnam time
    assert out[-1] == "3 items, 1 overdue"

    page = cli.ok("inbox", "vpdk-tinh", "--limit", "1", "--offset", "1").splitlines()
    assert [row.split()[0] for row in page[2:-1]] == ["HS-SOON"]
    assert page[-1] == "items 2–2, 0 overdue (more with --offset 2)"

    data = json.loads(cli.ok("inbox", "vpdk-tinh", "--json"))
    # The gateway's inbox document (services/inbox.py): next_offset and procedure_code too.
    assert set(data) == {"agency", "at", "offset", "limit", "next_offset", "items", "awaiting_receipt"}
    assert [item["dossier_id"] for item in data["items"]] == ["HS-LATE", "HS-SOON", "HS-LATER"]
    assert set(data["items"][0]) == {"dossier_id", "procedure", "procedure_code", "sector", "step_id", "step_name",
                                     "assigned_at", "due_at", "overdue", "received_by"}
    assert data["items"][0]["received_by"] is None and data["awaiting_receipt"] == []  # no projection row here
    assert data["items"][0]["overdue"] is True and data["items"][0]["procedure"] == "1.012756@1"

    assert cli.ok("inbox", "vpdk-tinh", "--offset", "5") == \
        "inbox of vpdk-tinh (Văn phòng Đăng ký đất đai - Sở Nông nghiệp và Môi trường): no open items past the first 5\n"
    assert cli.ok("inbox", "thue-co-so").endswith(": no open items\n")


def test_a_desk_inbox_lists_what_waits_for_its_receipt_and_who_received_each_step(cli: Cli) -> None:
    """Online dossiers addressed to a desk (portal status 1) wait in its inbox, longest
    waiting first; received, refused or other desks' ones do not. A step's row names the
    desk that received its dossier (Art. 14: maybe not the step agency's own area)."""
    cli.ok("definitions", "deploy")
    base = hand_made_state()

    def dossier(dossier_id: str, status: DossierStatus, desk: str, submitted: datetime) -> DossierState:
        return base.model_copy(update={
            "dossier_id": dossier_id, "status": status, "portal_status": PORTAL_STATUS[status],
            "received_at": submitted, "submitted_at": submitted, "received_by": desk, "steps": [], "notes": [],
            "completed_at": None, "verdict": None, "due_at": None, "original_due_at": None})

    with cli.sessions().begin() as session:
        for state in (dossier("HS-WAIT-2", DossierStatus.SUBMITTED, DESK, T0 + timedelta(hours=3)),
                      dossier("HS-WAIT-1", DossierStatus.SUBMITTED, DESK, T0),
                      dossier("HS-OTHER-DESK", DossierStatus.SUBMITTED, "bpmc-tinh", T0),
                      dossier("HS-REFUSED", DossierStatus.NOT_RECEIVED, DESK, T0),
                      base.model_copy(update={"dossier_id": "HS-RECEIVED", "status": DossierStatus.PROCESSING,
                                              "received_by": "bpmc-tinh"})):
            projection.apply_state(session, state, 1)
        inbox.add_item(session, routing("HS-RECEIVED", "tham-dinh", "vpdk-tinh", T0 + timedelta(days=2)))

    data = json.loads(cli.ok("inbox", DESK, "--json"))
    assert [(w["dossier_id"], w["procedure"], w["channel"]) for w in data["awaiting_receipt"]] == [
        ("HS-WAIT-1", "1.012756@1", "online"), ("HS-WAIT-2", "1.012756@1", "online")]
    assert data["awaiting_receipt"][0]["submitted_at"] == "2026-03-02T01:00:00Z" and data["items"] == []
    text = cli.ok("inbox", DESK).splitlines()
    assert text[0].startswith(f"waiting for {DESK} to receive or refuse them")
    assert [line.split()[0] for line in text[2:4]] == ["HS-WAIT-1", "HS-WAIT-2"]
    assert text[4] == "2 waiting for receipt" and text[5].endswith(": no open items")
    assert json.loads(cli.ok("inbox", DESK, "--json", "--limit", "1"))["awaiting_receipt"][0]["dossier_id"] == \
        "HS-WAIT-1"

    land = json.loads(cli.ok("inbox", "vpdk-tinh", "--json"))
    assert [(i["dossier_id"], i["received_by"]) for i in land["items"]] == [("HS-RECEIVED", "bpmc-tinh")]
    assert land["awaiting_receipt"] == []
    row = next(line for line in cli.ok("inbox", "vpdk-tinh").splitlines() if line.startswith("HS-RECEIVED"))
    assert row.split()[1:4] == ["1.012756@1", "tham-dinh", "bpmc-tinh"]


def test_inbox_refusals(cli: Cli) -> None:
    assert cli.refused("inbox", "vpdk-tinh") == \
        "unknown agency vpdk-tinh (no agencies are registered: run `lienthong definitions deploy`)"
    cli.ok("definitions", "deploy")
    assert cli.refused("inbox", "vpdk-tin").startswith("unknown agency vpdk-tin; close codes: vpdk-tinh")
    with pytest.raises(SystemExit):
        cli("inbox", "vpdk-tinh", "--limit", "0")


# ----------------------------------------------------------------------------- sheet


def hand_made_state() -> DossierState:
    """Two steps; the second asked for a supplement, was resumed, extended and done late."""
    received = T0
    step1_done = T0 + timedelta(hours=2)
    supplement_at = T0 + timedelta(days=1)
    resubmitted_at = T0 + timedelta(days=3)
    extended_at = T0 + timedelta(days=6)
    step2_done = T0 + timedelta(days=8)
    return DossierState(
        dossier_id="HS-SHEET", procedure_code="1.012756", procedure_version=1,
        procedure_name="Đăng ký đất đai", content_hash="0" * 64, sector="G13-TN01", level="xa",
        calendar="vn-gov", channel="online", status=DossierStatus.COMPLETED,
        portal_status=PORTAL_STATUS[DossierStatus.COMPLETED], received_at=received, clock_started_at=received,
        due_at=T0 + timedelta(days=9), original_due_at=T0 + timedelta(days=7),
        completed_at=step2_done, verdict="late", overdue=True, supplement_count=1,
        steps=[
            StepState(id="tiep-nhan", name="Tiếp nhận", agency=DESK, deadline="0.5d",
                      status=StepStatus.COMPLETED, assigned_at=received, due_at=T0 + timedelta(hours=4),
                      original_due_at=T0 + timedelta(hours=4), completed_at=step1_done,
                      outcome=Outcome.APPROVED, verdict="on_time"),
            StepState(id="lay-y-kien-so", name="Lấy ý kiến", deadline="3d",
                      status=StepStatus.SKIPPED),  # `when` was false: never routed
            StepState(id="tham-dinh", name="Thẩm định", agency="vpdk-tinh", deadline="5d",
                      status=StepStatus.COMPLETED, assigned_at=step1_done, due_at=T0 + timedelta(days=9),
                      original_due_at=T0 + timedelta(days=7), completed_at=step2_done,
                      outcome=Outcome.APPROVED, verdict="late", overdue=True, extensions=1),
        ],
        notes=[  # not in time order on purpose
            Note(at=extended_at, kind="extended", agency="vpdk-tinh", step_id="tham-dinh",
                 text="new appointment 2026-03-11T08:00:00+07:00: Chờ xác minh"),
            Note(at=supplement_at, kind="supplement_requested", agency="vpdk-tinh", step_id="tham-dinh",
                 text="Thiếu bản sao"),
            Note(at=resubmitted_at, kind="resubmitted", step_id="tham-dinh", text="documents supplemented"),
        ],
        last_event_seq=12,
    )


def test_sheet_rows_from_a_hand_made_state() -> None:
    sheet = build_sheet(hand_made_state())
    pairs = [(h.step_id, h.from_agency, h.to_agency, h.verdict) for h in sheet.handovers]
    assert pairs == [("tiep-nhan", APPLICANT, DESK, "on_time"), ("tham-dinh", DESK, "vpdk-tinh", "late")]
    assert sheet.handovers[1].at == T0 + timedelta(hours=2)
    assert sheet.handovers[1].overdue and sheet.handovers[1].extensions == 1
    assert [n.kind for n in sheet.notes] == ["supplement_requested", "resubmitted", "extended"]

    data = sheet.to_json()
    assert list(data) == ["dossier_id", "procedure", "procedure_name", "sector", "level", "channel",
                          "submitted_at", "received_at", "received_by", "result_desk", "portal_history",
                          "handovers", "notes", "result", "source"]
    assert list(data["handovers"][0]) == ["step_id", "step_name", "from", "to", "at", "due_at", "original_due_at",
                                          "completed_at", "status", "verdict", "overdue", "extensions",
                                          "earlier_pass"]
    # Received in person (no submission before receipt): 2, 4, then 5 and back to 4, and 10 at the end.
    assert [(c["portal_status"], c["at"]) for c in data["portal_history"]] == [
        (2, "2026-03-02T01:00:00Z"), (4, "2026-03-02T01:00:00Z"), (5, "2026-03-03T01:00:00Z"),
        (4, "2026-03-05T01:00:00Z"), (10, "2026-03-10T01:00:00Z")]
    assert data["portal_history"][-1]["name"] == "Đã trả kết quả"
    assert data["handovers"][0]["at"] == "2026-03-02T01:00:00Z"  # UTC in JSON, with a Z
    assert data["notes"][0] == {"at": "2026-03-03T01:00:00Z", "kind": "supplement_requested",
                                "agency": "vpdk-tinh", "step_id": "tham-dinh", "text": "Thiếu bản sao"}
    assert data["result"] == {"status": "completed", "portal_status": 10, "due_at": "2026-03-11T01:00:00Z",
                              "original_due_at": "2026-03-09T01:00:00Z", "finished_at": None,
                              "completed_at": "2026-03-10T01:00:00Z", "verdict": "late", "overdue": True,
                              "note": None, "supplement_count": 1, "obligation_count": 0, "return_count": 0}
    json.dumps(data)  # serialisable as it is


def test_parallel_branches_are_handed_over_by_the_last_completed_step() -> None:
    state = hand_made_state()
    t1 = T0 + timedelta(hours=2)
    steps = [
        state.steps[0],  # tiep-nhan, done at t1
        StepState(id="thue", name="Thuế", agency="thue-co-so", deadline="3d", status=StepStatus.COMPLETED,
                  assigned_at=t1, completed_at=t1 + timedelta(days=1), verdict="early"),
        StepState(id="tham-dinh", name="Thẩm định", agency="vpdk-tinh", deadline="5d", status=StepStatus.COMPLETED,
                  assigned_at=t1, completed_at=t1 + timedelta(days=2), verdict="on_time"),
        StepState(id="cap-nhat", name="Cập nhật", agency="vpdk-tinh", deadline="1d", status=StepStatus.ASSIGNED,
                  assigned_at=t1 + timedelta(days=2)),
    ]
    sheet = build_sheet(state.model_copy(update={"steps": steps}))
    assert [(h.step_id, h.from_agency, h.to_agency, h.status, h.verdict) for h in sheet.handovers] == [
        ("tiep-nhan", APPLICANT, DESK, "completed", "on_time"),
        ("thue", DESK, "thue-co-so", "completed", "early"),
        ("tham-dinh", DESK, "vpdk-tinh", "completed", "on_time"),
        ("cap-nhat", "vpdk-tinh", "vpdk-tinh", "assigned", None),
    ]


def returned_state() -> DossierState:
    """Received online at another commune's desk; tham-dinh done, phe-duyet sent it back
    to tham-dinh, which is handed over again; processing not finished yet."""
    submitted, received = T0 - timedelta(hours=20), T0
    first_done, returned_at = T0 + timedelta(hours=5), T0 + timedelta(days=1)
    tham_dinh = StepState(id="tham-dinh", name="Thẩm định", agency="vpdk-tinh", deadline="2d",
                          status=StepStatus.COMPLETED, assigned_at=received, due_at=T0 + timedelta(days=2),
                          original_due_at=T0 + timedelta(days=2), completed_at=first_done,
                          outcome=Outcome.APPROVED, verdict="early")
    phe_duyet = StepState(id="phe-duyet", name="Phê duyệt", agency="so-nnmt", deadline="1d",
                          status=StepStatus.RETURNED, assigned_at=first_done, due_at=first_done + timedelta(days=1),
                          original_due_at=first_done + timedelta(days=1), note="thiếu trích đo")
    return hand_made_state().model_copy(update={
        "dossier_id": "HS-RETURNED", "status": DossierStatus.PROCESSING,
        "portal_status": PORTAL_STATUS[DossierStatus.PROCESSING], "submitted_at": submitted, "received_at": received,
        "received_by": "bpmc-xa-xa-dong-son", "result_desk": "bpmc-xa-xa-dong-son", "completed_at": None,
        "verdict": None, "overdue": False, "supplement_count": 0, "return_count": 1,
        "steps": [
            tham_dinh.model_copy(update={"status": StepStatus.ASSIGNED, "assigned_at": returned_at,
                                         "completed_at": None, "outcome": None, "verdict": None,
                                         "due_at": returned_at + timedelta(days=2)}),
            StepState(id="phe-duyet", name="Phê duyệt", deadline="1d"),
            StepState(id="tra-ket-qua", name="Trả kết quả", deadline="1d"),
        ],
        "earlier_passes": [tham_dinh, phe_duyet],
        "notes": [Note(at=returned_at, kind="returned", agency="so-nnmt", step_id="phe-duyet",
                       text="to tham-dinh: thiếu trích đo")],
    })


def test_a_return_keeps_the_earlier_passes_on_the_sheet() -> None:
    sheet = build_sheet(returned_state())
    assert [(h.step_id, h.from_agency, h.to_agency, h.status, h.earlier_pass) for h in sheet.handovers] == [
        ("tham-dinh", APPLICANT, "vpdk-tinh", "completed", True),
        ("phe-duyet", "vpdk-tinh", "so-nnmt", "returned", True),
        ("tham-dinh", "so-nnmt", "vpdk-tinh", "assigned", False),  # handed back by the step that returned it
    ]
    returned = sheet.handovers[1]
    assert returned.completed_at == T0 + timedelta(days=1)  # when it sent the dossier back (its note)
    assert (sheet.received_by, sheet.result_desk) == ("bpmc-xa-xa-dong-son", "bpmc-xa-xa-dong-son")
    assert [c.portal_status for c in sheet.portal_history] == [1, 2, 4]
    assert sheet.portal_history[0].at == T0 - timedelta(hours=20) and sheet.result.return_count == 1
    text = render_sheet(sheet, when).splitlines()
    assert "  received by bpmc-xa-xa-dong-son; result returned at bpmc-xa-xa-dong-son" in text
    rows = [line for line in text if line.split()[:1] in (["1"], ["2"], ["3"])]  # the handover rows
    assert [line.endswith("EARLIER PASS") for line in rows] == [True, True, False]
    assert "   1 Mới đăng ký trực tuyến" in next(line for line in text if line.endswith("Mới đăng ký trực tuyến"))


def test_the_portal_history_of_each_ending() -> None:
    """1 → 3 refused at the desk; 2 → 4 → 6 → 4 → 7 → 8 withdrawn after paying; 9 → 10."""
    base = hand_made_state()
    refused_at = T0 + timedelta(hours=1)
    not_received = base.model_copy(update={
        "status": DossierStatus.NOT_RECEIVED, "portal_status": 3, "submitted_at": T0, "received_at": T0,
        "steps": [st.model_copy(update={"status": StepStatus.PENDING, "assigned_at": None, "agency": None})
                  for st in base.steps],
        "completed_at": refused_at, "verdict": None,
        "notes": [Note(at=refused_at, kind="not_received", agency=DESK, text="không thuộc thẩm quyền")]})
    assert [(c.portal_status, c.at) for c in build_sheet(not_received).portal_history] == [(1, T0), (3, refused_at)]
    assert "submitted 2026-03-02 08:00, refused at the desk: never received" in \
        render_sheet(build_sheet(not_received), when)

    t = [T0 + timedelta(days=n) for n in range(5)]
    withdrawn = base.model_copy(update={
        "status": DossierStatus.WITHDRAWN, "portal_status": 8, "completed_at": t[3],
        "notes": [Note(at=t[1], kind="obligation_requested", agency="thue-co-so", text="2.400.000 đ"),
                  Note(at=t[2], kind="resubmitted", agency=DESK, text="financial obligation paid"),
                  Note(at=t[3], kind="withdrawn", agency=DESK, text="đơn xin rút")]})
    assert [(c.portal_status, c.at) for c in build_sheet(withdrawn).portal_history] == [
        (2, T0), (4, T0), (6, t[1]), (4, t[2]), (7, t[3]), (8, t[3])]

    returned = base.model_copy(update={"finished_at": t[3], "completed_at": t[4], "notes": []})
    sheet = build_sheet(returned)
    assert [(c.portal_status, c.at) for c in sheet.portal_history] == [(2, T0), (4, T0), (9, t[3]), (10, t[4])]
    assert sheet.result.finished_at == t[3]
    assert "processing finished 2026-03-05 08:00, finished 2026-03-06 08:00" in render_sheet(sheet, when)


def test_sheet_command_reads_the_projection(sqlite_cli: Cli) -> None:
    state = hand_made_state()
    with sqlite_cli.sessions().begin() as session:
        projection.apply_state(session, state, state.last_event_seq)

    data = json.loads(sqlite_cli.ok("dossiers", "sheet", "HS-SHEET", "--json"))
    assert data == build_sheet(state).to_json() and data["source"] == "projection"

    text = sqlite_cli.ok("dossiers", "sheet", "HS-SHEET").splitlines()
    assert text[0].startswith("PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ")
    assert text[1] == "dossier HS-SHEET: 1.012756@1 Đăng ký đất đai"
    first = next(line for line in text if line.strip().startswith("1 "))
    assert f"applicant (online)  {DESK}" in first and "2026-03-02 08:00" in first and first.endswith("on_time")
    second = next(line for line in text if line.strip().startswith("2 "))
    assert second.split()[1:4] == ["tham-dinh", DESK, "vpdk-tinh"]
    assert "(extended)" in second and second.endswith("OVERDUE")
    assert "  2026-03-03 08:00  supplement requested (vpdk-tinh, step tham-dinh): Thiếu bản sao" in text
    assert "  status completed (portal status 10), verdict late, OVERDUE" in text
    assert "  due 2026-03-11 08:00 (legal due 2026-03-09 08:00), finished 2026-03-10 08:00" in text


def test_moved_dues_compares_dossier_and_step_dues() -> None:
    before = hand_made_state()
    later = T0 + timedelta(days=10)
    after = before.model_copy(deep=True)
    after.due_at = later
    after.steps[2].due_at = later
    assert moved_dues(before, before.model_copy(deep=True)) == []
    assert moved_dues(before, after) == ["due 2026-03-11 08:00 → 2026-03-12 08:00",
                                         "step tham-dinh due 2026-03-11 08:00 → 2026-03-12 08:00"]


def test_calendars_apply_refuses_a_broken_calendar_file(sqlite_cli: Cli) -> None:
    calendar = sqlite_cli.definitions / "calendars" / "vn-gov.yaml"
    calendar.write_text(calendar.read_text(encoding="utf-8").replace("- date: 2026-01-02", "- date: 2026-13-02"),
                        encoding="utf-8")
    result = sqlite_cli("calendars", "apply", "--reason", "test")
    assert result.code == 1
    assert result.out.strip().startswith(f"{calendar}:")  # PATH:LINE: what is wrong
    assert result.line() == "1 problem(s) in the calendar files; nothing applied"
    assert sqlite_cli.refused("calendars", "apply", "--calendar", "mars").startswith("unknown calendar 'mars'")


def test_calendars_apply_with_no_open_dossier_needs_no_temporal(sqlite_cli: Cli) -> None:
    assert sqlite_cli.ok("calendars", "apply") == "0 dossiers checked, 0 moved (calendars vn-gov, vn-gov-seasonal)\n"
