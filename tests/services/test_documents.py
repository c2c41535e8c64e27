"""The printed forms from states built by hand (services/documents): which form applies
when, what each prints from the dossier's data (and the blanks where it has none), the
two editions' numbering, operators' templates, and text that survives into the PDF.
The same forms through the real workflow: tests/services/test_documents_e2e.py."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdf
import pytest

from services.documents.content import Known, NotApplicable, Printing, build, not_applicable
from services.documents.editions import EDITIONS, FormKind, UnknownForm, resolve
from services.documents.fields import read_fields
from services.documents.render import FormTemplateError, environment, render_html, to_pdf
from store.receipt_book import Entry
from tests.store.builders import T0, make_state
from workflows.payloads import DossierState, DossierStatus, Note

DESK = "bpmc-xa-xa-tan-lap"
AGENCIES = {DESK: "Bộ phận Một cửa xã Tân Lập", "vpdk-tinh": "Văn phòng Đăng ký đất đai tỉnh"}
NAME = "Nguyễn Thị Hường"
DATA = {"commune": "xa-tan-lap", "applicant": {"name": NAME, "address": "Thôn Đông, xã Tân Lập"},
        "phone": "0912 345 678", "email": "huong@example.vn", "sets": 1,
        "documents": [{"name": "Đơn đăng ký", "kind": "original", "count": 1},
                      {"name": "Giấy chứng nhận <cũ>", "kind": "certified_copy", "count": 2}]}
NOW = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
EDITION = EDITIONS["03/2025"]
PER_FORM = {  # a note that makes each form apply, and the status it goes with
    FormKind.SUPPLEMENT_REQUEST: (DossierStatus.AWAITING_SUPPLEMENT, "supplement_requested", "thiếu bản đồ địa chính"),
    FormKind.REFUSAL: (DossierStatus.NOT_RECEIVED, "not_received", "hồ sơ không thuộc thẩm quyền"),
    FormKind.APOLOGY: (DossierStatus.PROCESSING, "extended",
                       f"new appointment {(T0 + timedelta(days=25)).isoformat()}: chờ ý kiến của Sở Xây dựng"),
    FormKind.STOP_NOTICE: (DossierStatus.WITHDRAWN, "withdrawn", "người nộp xin rút hồ sơ"),
}


def state_for(kind: FormKind) -> DossierState:
    state = make_state(progress=2).model_copy(update={"received_by": DESK})
    if kind in PER_FORM:
        status, note_kind, text = PER_FORM[kind]
        note = Note(at=T0 + timedelta(days=3), kind=note_kind, agency="vpdk-tinh", step_id="tham-dinh", text=text)
        state = state.model_copy(update={"status": status, "notes": [note]})
    return state


def known(state: DossierState, data: dict[str, Any] | None = DATA, **changes: Any) -> Known:
    values: dict[str, Any] = {"state": state, "source": "workflow", "desk": DESK, "data": data, "procedure": None,
                              "agencies": AGENCIES, "entry": Entry(DESK, 2026, 17, state.dossier_id, T0)}
    return Known(**(values | changes))


def html_of(kind: FormKind, facts: Known, printing: Printing | None = None, folder: Path | None = None) -> str:
    printing = printing or Printing(EDITION, "UBND TỈNH HÀ TĨNH", "Hà Tĩnh")
    context = build(kind, facts, printing, NOW)
    return render_html(environment(printing.edition, folder), kind.template, context.variables())


def pdf_text(html: str) -> str:
    reader = pypdf.PdfReader(io.BytesIO(to_pdf(html)))
    return "\n".join(page.extract_text() for page in reader.pages)


# ----------------------------------------------------------------------------- numbering


def test_the_editions_number_the_forms_as_their_circulars_do() -> None:
    new, old = EDITIONS["03/2025"], EDITIONS["01/2018"]
    assert [resolve(new, n) for n in ("01", "2", "03", "04", "05", "06", "07")] == list(FormKind)
    assert resolve(old, "04") is FormKind.APOLOGY
    assert resolve(old, "05") is FormKind.CONTROL_SHEET and resolve(old, "06") is FormKind.TRACKING_BOOK
    assert old.number_of(FormKind.STOP_NOTICE) is None and resolve(old, "stop-notice") is FormKind.STOP_NOTICE
    with pytest.raises(UnknownForm, match=r"unknown form '07': the 01/2018 numbering has 01 receipt, .*06 "
                                          r"tracking-book; a kind's name is accepted too"):
        resolve(old, "07")


# ----------------------------------------------------------------------------- what applies when


@pytest.mark.parametrize(("kind", "status", "reason"), [
    (FormKind.RECEIPT, DossierStatus.SUBMITTED, "it was not received (it waits for a desk to receive it"),
    (FormKind.RECEIPT, DossierStatus.NOT_RECEIVED, "the desk refused to receive it (print the refusal instead)"),
    (FormKind.CONTROL_SHEET, DossierStatus.SUBMITTED, "it was not received"),
    (FormKind.SUPPLEMENT_REQUEST, DossierStatus.PROCESSING, "no supplement was requested (status processing)"),
    (FormKind.REFUSAL, DossierStatus.COMPLETED, "for a dossier the desk refused to receive, and this one's status "
                                                "is completed"),
    (FormKind.APOLOGY, DossierStatus.PROCESSING, "it was given no new appointment (no extension)"),
    (FormKind.STOP_NOTICE, DossierStatus.REJECTED, "not stopped at the applicant's request (status rejected)"),
    (FormKind.TRACKING_BOOK, DossierStatus.PROCESSING, "a desk's book, not one dossier's"),
])
def test_a_form_that_does_not_apply_says_why(kind: FormKind, status: DossierStatus, reason: str) -> None:
    state = make_state().model_copy(update={"status": status})
    why = not_applicable(kind, state, EDITION)
    assert why is not None and reason in why and state.dossier_id in why or kind is FormKind.TRACKING_BOOK, why
    assert why.startswith(f"form {EDITION.number_of(kind)} ({kind.value})")
    with pytest.raises(NotApplicable, match="does not apply|a desk's book"):
        build(kind, known(state), Printing(EDITION), NOW)


# ----------------------------------------------------------------------------- what each prints


@pytest.mark.parametrize("kind", [k for k in FormKind if k is not FormKind.TRACKING_BOOK])
def test_every_form_prints_the_dossier_and_the_applicant(kind: FormKind) -> None:
    state = state_for(kind)
    html = html_of(kind, known(state))
    number = EDITION.number_of(kind)
    assert f"Mẫu số {number}" in html and "Thông tư số 03/2025/TT-VPCP" in html
    assert state.dossier_id in html and NAME in html and "UBND TỈNH HÀ TĨNH" in html
    assert "Hà Tĩnh</span>, ngày" in html
    if kind in PER_FORM:
        text = PER_FORM[kind][2]
        assert (text.split(": ", 1)[-1] if kind is FormKind.APOLOGY else text) in html


def test_the_receipt_slip_carries_every_field_of_legal_md() -> None:
    html = html_of(FormKind.RECEIPT, known(state_for(FormKind.RECEIPT)))
    for expected in ("Bộ phận Một cửa xã Tân Lập", NAME, "Thôn Đông, xã Tân Lập", "0912 345 678", "huong@example.vn",
                     "Đơn đăng ký", "Bản chính", "Bản sao có chứng thực", "Số lượng hồ sơ: <span class=\"value\">1",
                     "08 giờ 00 phút, ngày 02 tháng 03 năm 2026", "(08:00 02/03/2026)",  # received, Vietnam time
                     "08:00 22/03/2026",  # the appointment
                     "Quyển số: <span class=\"value\">2026</span>", "Số thứ tự: <span class=\"value\">17</span>",
                     "Người nộp hồ sơ", "Người tiếp nhận hồ sơ"):
        assert expected in html, expected
    # The data is text, never markup: autoescape.
    assert "Giấy chứng nhận &lt;cũ&gt;" in html and "<cũ>" not in html


def test_what_lienthong_does_not_know_is_a_blank_line_never_a_guess() -> None:
    facts = known(state_for(FormKind.RECEIPT), data={"commune": "xa-tan-lap"}, entry=None)
    html = html_of(FormKind.RECEIPT, facts, Printing(EDITION))
    assert NAME not in html and "Thôn Đông" not in html
    assert html.count('class="blank"') >= 8  # name, address, phone, email, sets, volume, number, authority, place
    assert "Đơn đăng ký" not in html and html.count("<td>&nbsp;</td>") == 12  # an empty table to fill by hand
    # Data Temporal no longer has: blank too, and said.
    context = build(FormKind.RECEIPT, known(state_for(FormKind.RECEIPT), data=None,
                                            data_missing="Temporal no longer keeps its history"), Printing(EDITION), NOW)
    assert context.applicant.name is None
    assert context.applicant.warnings == ["the dossier's data cannot be read (Temporal no longer keeps its history): "
                                          "the applicant's fields are left blank"]


def test_data_fields_are_read_by_their_documented_names_and_wrong_types_are_warned() -> None:
    flat = read_fields({"applicant_name": "Trần Văn Bình", "applicant_address": "Phường Bắc Hà", "phone": 912,
                        "request": "Cấp lại giấy phép", "result_delivery": "post", "result_address": "Số 1 Lê Lợi"})
    assert (flat.name, flat.address, flat.phone, flat.request) == ("Trần Văn Bình", "Phường Bắc Hà", "912",
                                                                   "Cấp lại giấy phép")
    assert flat.result_delivery == "post" and flat.warnings == []
    assert read_fields({"applicant": "Lê Thị Cúc"}).name == "Lê Thị Cúc"
    bad = read_fields({"applicant": {"name": ["x"]}, "sets": "hai", "documents": [{"name": "Đơn", "count": -1}, 7],
                       "result_delivery": "mail"})
    assert bad.name is None and bad.sets is None
    assert bad.documents is not None and [(d.name, d.count) for d in bad.documents] == [("Đơn", None), (None, None)]
    assert bad.warnings == [
        "data field applicant.name is not text (['x']): left blank",
        "data field sets is not a whole number ('hai'): left blank",
        "data field documents[0].count is not a whole number: left blank",
        "data field documents[1] is not an object (7): left blank",
        "data field result_delivery is 'mail', expected desk or post: left blank",
    ]


def test_the_apology_gives_the_previous_and_the_new_appointment_and_the_reason() -> None:
    state = state_for(FormKind.APOLOGY)
    first = Note(at=T0 + timedelta(days=2), kind="extended", agency="vpdk-tinh",
                 text=f"new appointment {(T0 + timedelta(days=21)).isoformat()} (asked 2026-03-22T20:00:00+07:00: "
                      "moved into working time): đo đạc lại")
    state = state.model_copy(update={"notes": [first, *state.notes]})
    context = build(FormKind.APOLOGY, known(state), Printing(EDITION), NOW)
    apology = context.variables()["apology"]
    assert apology["previous_appointment"] == T0 + timedelta(days=21)  # the first extension's new appointment
    assert apology["new_appointment"] == T0 + timedelta(days=25)
    assert apology["reason"] == "chờ ý kiến của Sở Xây dựng" and apology["count"] == 2
    html = html_of(FormKind.APOLOGY, known(state))
    assert "08 giờ 00 phút, ngày 27 tháng 03 năm 2026" in html and "lần 2" in html


def test_the_control_sheet_has_each_hand_over_with_times_and_verdicts() -> None:
    state = make_state(progress=3).model_copy(update={"received_by": DESK})
    html = html_of(FormKind.CONTROL_SHEET, known(state))
    assert html.count("Người nhận:") == 3 and html.count("Đúng hạn") == 3
    assert "Cơ quan chủ trì giải quyết: <span class=\"value\">Văn phòng Đăng ký đất đai tỉnh" in html
    assert "08:00 02/03/2026" in html and "12:00 02/03/2026" in html  # handed over
    assert "Người nộp hồ sơ (Trực tiếp)" in html


def test_the_older_numbering_is_a_setting() -> None:
    old = Printing(EDITIONS["01/2018"])
    sheet = html_of(FormKind.CONTROL_SHEET, known(make_state(progress=1)), old)
    assert "Mẫu số 05" in sheet and "Thông tư số 01/2018/TT-VPCP" in sheet
    stop = html_of(FormKind.STOP_NOTICE, known(state_for(FormKind.STOP_NOTICE)), old)
    assert "Mẫu số" not in stop and "Thông báo dừng xử lý hồ sơ" in stop


# ----------------------------------------------------------------------------- operators' templates


def test_an_operators_template_overrides_the_shipped_one_edition_first(tmp_path: Path) -> None:
    (tmp_path / "receipt.html.j2").write_text(
        '{% extends "base.html.j2" %}{% block body %}TỈNH TA {{ dossier.id }} {{ applicant.name }}{% endblock %}',
        encoding="utf-8")
    facts = known(state_for(FormKind.RECEIPT), data={"applicant_name": "<b>Bình</b>"})
    html = html_of(FormKind.RECEIPT, facts, folder=tmp_path)
    assert "TỈNH TA HS-2026-000001 &lt;b&gt;Bình&lt;/b&gt;" in html and "@page { size: A4" in html  # shipped base
    edition = tmp_path / "circular-03-2025"
    edition.mkdir()
    (edition / "receipt.html.j2").write_text("THEO THÔNG TƯ 03 {{ dossier.id }}", encoding="utf-8")
    assert html_of(FormKind.RECEIPT, facts, folder=tmp_path).strip() == "THEO THÔNG TƯ 03 HS-2026-000001"
    # Another edition does not look in that folder: the operator's common one applies.
    assert "TỈNH TA" in html_of(FormKind.RECEIPT, facts, Printing(EDITIONS["01/2018"]), tmp_path)


def test_a_broken_or_oversized_template_is_named(tmp_path: Path) -> None:
    (tmp_path / "refusal.html.j2").write_text("line one\n{% if %}\n", encoding="utf-8")
    with pytest.raises(FormTemplateError, match=r"refusal.html.j2:2: "):
        html_of(FormKind.REFUSAL, known(state_for(FormKind.REFUSAL)), folder=tmp_path)
    (tmp_path / "apology.html.j2").write_text("{{ no_such_variable }}", encoding="utf-8")
    with pytest.raises(FormTemplateError, match="template apology.html.j2: 'no_such_variable' is undefined"):
        html_of(FormKind.APOLOGY, known(state_for(FormKind.APOLOGY)), folder=tmp_path)
    (tmp_path / "receipt.html.j2").write_text("x" * (256 * 1024 + 1), encoding="utf-8")
    with pytest.raises(FormTemplateError, match=r"receipt.html.j2: 262145 bytes; a template is at most 262144 bytes"):
        html_of(FormKind.RECEIPT, known(state_for(FormKind.RECEIPT)), folder=tmp_path)


# ----------------------------------------------------------------------------- PDF


def test_the_pdf_keeps_vietnamese_text_and_is_a4() -> None:
    html = html_of(FormKind.RECEIPT, known(state_for(FormKind.RECEIPT)))
    pdf = to_pdf(html)
    page = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]
    assert (round(float(page.mediabox.width) * 25.4 / 72), round(float(page.mediabox.height) * 25.4 / 72)) == (210, 297)
    text = pdf_text(html)
    for expected in (NAME, "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ", "Đăng ký đất đai, tài sản gắn liền với đất",
                     "HS-2026-000001", "22/03/2026"):
        assert expected in text, expected
