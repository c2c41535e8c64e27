"""The forms through the front ends on a real `lienthong dev` stack:
`GET /v1/dossiers/{id}/documents/{form}` (HTML or PDF by `Accept`, the dossier's
involvement rules, the problems of a form that does not apply or is unknown) and
`lienthong documents render|book` (exit 2 for a form that does not apply)."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pypdf
import pytest
from temporalio.client import Client

from gateway.routes_agency import negotiate
from services.documents.render import LOCAL_TZ
from tests.gateway.stack import DESK, LAND_OFFICE, Api, Stack, load_agency, start_stack
from tests.support.codec import TEST_CONVERTER

NAME = "Phạm Thị Thu Hằng"
DATA = {"commune": "xa-tan-lap", "applicant_name": NAME, "applicant_address": "Xóm Đồi, xã Tân Lập",
        "documents": [{"name": "Đơn đề nghị", "kind": "original", "count": 1}]}


@pytest.fixture(scope="module")
def forms_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("documents")
    running = start_stack(folder, f"sqlite:///{folder / 'lienthong.db'}", forms_authority="UBND TỈNH THỬ NGHIỆM",
                          forms_place="Tân Lập")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
async def api(forms_stack: Stack) -> AsyncIterator[Api]:
    temporal = await Client.connect(forms_stack.address, data_converter=TEST_CONVERTER)
    async with httpx.AsyncClient(base_url=forms_stack.url, timeout=60) as http:
        yield Api(forms_stack, http, temporal)


async def received(api: Api) -> str:
    """A dossier received at the desk and handed to the land office."""
    desk = api.stack.token(DESK)
    dossier_id = await api.submit(desk, DATA)
    await api.assigned(dossier_id, "tiep-nhan")
    assert (await api.post(f"/v1/dossiers/{dossier_id}/steps/tiep-nhan/complete", desk, {})).status_code == 200
    await api.assigned(dossier_id, "tham-dinh")
    await api.settled(dossier_id)
    return dossier_id


async def fetch(api: Api, path: str, token: str, accept: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} | ({"Accept": accept} if accept else {})
    return await api.http.get(path, headers=headers)


async def test_a_form_as_html_or_pdf_for_the_agencies_on_the_dossier(api: Api) -> None:
    dossier_id = await received(api)
    path = f"/v1/dossiers/{dossier_id}/documents/01"
    page = await fetch(api, path, api.stack.token(DESK))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-disposition"] == f'inline; filename="mau-01-{dossier_id}.html"'
    assert page.headers["lienthong-source"] == "workflow"
    html = page.text
    for expected in (NAME, "Xóm Đồi, xã Tân Lập", dossier_id, "Thủ tục thử cổng giao tiếp", "UBND TỈNH THỬ NGHIỆM",
                     "Tân Lập</span>, ngày", "Đơn đề nghị", "10 ngày làm việc",
                     "Quyển số: <span class=\"value\">", "Giấy tiếp nhận hồ sơ và hẹn trả kết quả"):
        assert expected in html, expected

    pdf = await fetch(api, f"/v1/dossiers/{dossier_id}/documents/receipt", api.stack.token(LAND_OFFICE),
                      accept="text/html;q=0.5, application/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    text = " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages).split())
    state = await api.state(dossier_id)
    assert state.original_due_at is not None
    assert NAME in text and dossier_id in text and state.original_due_at.astimezone(LOCAL_TZ).strftime("%d/%m/%Y") in text

    sheet = await fetch(api, f"/v1/dossiers/{dossier_id}/documents/06", api.stack.token(LAND_OFFICE))
    assert sheet.status_code == 200 and "Phiếu kiểm soát quá trình giải quyết hồ sơ" in sheet.text


async def test_strangers_learn_nothing_and_refusals_say_why(api: Api) -> None:
    dossier_id = await received(api)
    desk = api.stack.token(DESK)
    stranger = await fetch(api, f"/v1/dossiers/{dossier_id}/documents/01", api.stack.token(load_agency(1)))
    missing = await fetch(api, "/v1/dossiers/HS-NO-SUCH/documents/01", api.stack.token(load_agency(1)))
    assert stranger.status_code == missing.status_code == 404
    assert stranger.json()["type"] == missing.json()["type"] == "/problems/unknown-dossier"
    assert stranger.json()["detail"] == f"unknown dossier {dossier_id}"

    refusal = await fetch(api, f"/v1/dossiers/{dossier_id}/documents/03", desk)
    assert refusal.status_code == 409 and refusal.json()["type"] == "/problems/form-not-applicable"
    assert refusal.json()["detail"].startswith(f"form 03 (refusal) does not apply to dossier {dossier_id}")
    apology = await fetch(api, f"/v1/dossiers/{dossier_id}/documents/04", desk)
    assert apology.status_code == 409 and "no new appointment" in apology.json()["detail"]
    book = await fetch(api, f"/v1/dossiers/{dossier_id}/documents/07", desk)
    assert book.status_code == 409 and "a desk's book" in book.json()["detail"]

    unknown = await fetch(api, f"/v1/dossiers/{dossier_id}/documents/99", desk)
    assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/unknown-form"
    assert "the 03/2025 numbering has 01 receipt" in unknown.json()["detail"]
    json_only = await fetch(api, f"/v1/dossiers/{dossier_id}/documents/01", desk, accept="application/json")
    assert json_only.status_code == 406 and json_only.json()["type"] == "/problems/not-acceptable"
    assert json_only.headers["content-type"] == "application/problem+json"


def test_accept_is_negotiated() -> None:
    assert negotiate(None) == negotiate("*/*") == negotiate("text/*") == negotiate("") == "text/html"
    assert negotiate("application/pdf") == negotiate("application/*, text/html;q=0.9") == "application/pdf"
    assert negotiate("text/html, application/pdf") == "text/html"  # a tie: HTML
    assert negotiate("application/pdf;q=0, text/html;q=0") is None
    assert negotiate("application/json") is None and negotiate("image/png;q=x") is None


async def test_the_cli_prints_forms_and_the_book(api: Api) -> None:
    dossier_id = await received(api)
    out = api.stack.log.parent / f"{uuid.uuid4().hex}.pdf"
    printed = api.stack.lienthong("documents", "render", dossier_id, "--form", "01", "--format", "pdf",
                                  "--out", str(out))
    assert printed.returncode == 0, printed.stderr
    assert f"mau-01-{dossier_id}: pdf written to {out}" in printed.stderr and out.read_bytes()[:5] == b"%PDF-"
    assert NAME in pypdf.PdfReader(out).pages[0].extract_text()

    html = api.stack.lienthong("documents", "render", dossier_id, "--form", "control-sheet")
    assert html.returncode == 0 and "Phiếu kiểm soát quá trình giải quyết hồ sơ" in html.stdout

    refused = api.stack.lienthong("documents", "render", dossier_id, "--form", "05")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == (f"form 05 (stop-notice) does not apply to dossier {dossier_id}: its processing "
                                      "was not stopped at the applicant's request (status processing)")
    unknown = api.stack.lienthong("documents", "render", dossier_id, "--form", "08")
    assert unknown.returncode == 2 and "unknown form '08'" in unknown.stderr
    missing = api.stack.lienthong("documents", "render", "HS-NO-SUCH", "--form", "01")
    assert missing.returncode == 1 and missing.stderr.strip() == "unknown dossier HS-NO-SUCH"

    today = (await api.state(dossier_id)).received_at.astimezone(LOCAL_TZ).date().isoformat()
    book = api.stack.lienthong("documents", "book", "--agency", DESK, "--from", today, "--to", today)
    assert book.returncode == 0, book.stderr
    assert dossier_id in book.stdout and NAME in book.stdout and "Sổ theo dõi hồ sơ" in book.stdout
    for bad, message in ((("--agency", "no-such-desk", "--from", today, "--to", today), "unknown agency 'no-such-desk'"),
                         (("--agency", DESK, "--from", today, "--to", "2000-01-01"), "is before --from")):
        result = api.stack.lienthong("documents", "book", *bad)
        assert result.returncode == 1 and message in result.stderr, result.stderr
    assert api.stack.lienthong("documents", "book", "--agency", DESK, "--from", "1/2/2026", "--to", today).returncode == 2
