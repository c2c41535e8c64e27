"""GET /v1/reports/tthc against the real `lienthong dev` stack (stack.py): dossiers
submitted and finished through the gateway, the report read with a monitoring token
as JSON, CSV and XLSX, the same as the service computes on the store; agency and
monitoring tokens each refused where their role does not reach."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from services import report as reports
from tests.gateway.stack import DESK, LAND_OFFICE, Api

DATA = {"commune": "xa-tan-lap"}
MONITORING_UNIT = "ubnd-tinh"


def _period() -> str:
    # Yesterday to tomorrow: the test's dossiers are in it whenever midnight falls.
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    return f"from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"


async def test_a_monitoring_token_reads_the_figures_of_dossiers_handled_through_the_gateway(api: Api) -> None:
    desk, land = api.stack.token(DESK), api.stack.token(LAND_OFFICE)
    monitor = api.stack.token(MONITORING_UNIT, "monitoring")
    dossiers = [await api.submit(desk, DATA) for _ in range(3)]
    done = dossiers[0]
    for step, token in (("tiep-nhan", desk), ("tham-dinh", land), ("tra-ket-qua", desk)):
        await api.assigned(done, step)
        reply = await api.post(f"/v1/dossiers/{done}/steps/{step}/complete", token, {})
        assert reply.status_code == 200, reply.text
    for dossier in dossiers:
        await api.settled(dossier)

    reply = await api.get(f"/v1/reports/tthc?{_period()}&by=sector", monitor)
    assert reply.status_code == 200, reply.text
    made = reports.Report.model_validate(reply.json())
    assert not made.complete and made.by == "sector"
    # Three received in person at the commune's desk (procedure T.GW01: level xa, Đất đai): one
    # resolved within its 10 days (early), two in progress within time.
    assert [(row.kind, row.code, row.name) for row in made.rows] == [
        ("total", None, "Tổng cộng"), ("sector", "G13-TN01", "Đất đai")]
    assert made.rows[1].figures() == (3, 0, 3, 0, 1, 1, 0, 0, 2, 2, 0)
    with api.stack.sessions()() as session:  # the service on the same store, as of the same instant
        first, last = made.first_day, made.last_day
        again = reports.build_report(session, first, last, "sector", now=made.ends_at)
    assert again == made

    spreadsheet = await api.http.get(f"/v1/reports/tthc?{_period()}", headers={
        "Authorization": f"Bearer {monitor}", "Accept": reports.XLSX_MEDIA_TYPE})
    assert spreadsheet.status_code == 200 and spreadsheet.headers["content-type"] == reports.XLSX_MEDIA_TYPE
    assert spreadsheet.headers["content-disposition"].startswith('attachment; filename="bieu06-')
    sheet = load_workbook(io.BytesIO(spreadsheet.content)).active
    assert sheet is not None
    assert [sheet.cell(row, 2).value for row in range(10, 13)] == ["Tổng cộng", "Cấp xã", "Đất đai"]
    assert [sheet.cell(12, n).value for n in range(3, 14)] == [3, 0, 3, 0, 1, 1, 0, 0, 2, 2, 0]

    table = await api.http.get(f"/v1/reports/tthc?{_period()}&by=agency", headers={
        "Authorization": f"Bearer {monitor}", "Accept": "text/csv"})
    assert table.status_code == 200 and table.headers["content-type"] == "text/csv; charset=utf-8"
    lines = list(csv.DictReader(io.StringIO(table.text)))
    assert [(line["kind"], line["code"], line["received_total"]) for line in lines] == [
        ("total", "", "3"), ("agency", DESK, "3")]


async def test_each_role_is_refused_where_it_does_not_reach(api: Api) -> None:
    desk, monitor = api.stack.token(DESK), api.stack.token(MONITORING_UNIT, "monitoring")
    refused = await api.get(f"/v1/reports/tthc?{_period()}", desk)
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/wrong-role"
    assert "reports are read with a monitoring token" in refused.json()["detail"]
    for reply in (await api.get("/v1/inbox", monitor),
                  await api.post("/v1/dossiers", monitor, {"procedure": "T.GW01", "data": DATA})):
        assert reply.status_code == 403 and reply.json()["type"] == "/problems/wrong-role", reply.text
        assert "acts for no agency" in reply.json()["detail"]
    who = await api.get("/v1/agency", monitor)
    assert who.status_code == 200 and (who.json()["code"], who.json()["role"]) == (MONITORING_UNIT, "monitoring")
    assert (await api.get("/v1/agency", desk)).json()["role"] == "agency"
    assert (await api.get(f"/v1/reports/tthc?{_period()}")).status_code == 401


async def test_bad_periods_and_groupings_are_problems(api: Api) -> None:
    monitor = api.stack.token(MONITORING_UNIT, "monitoring")
    cases = {
        "from=2026-02-01&to=2026-01-01": ("/problems/invalid-period", "ends (2026-01-01) before it starts"),
        "from=2025-01-01&to=2026-01-31": ("/problems/invalid-period", "at most 366 days (MAX_REPORT_DAYS)"),
        "from=2999-01-01&to=2999-01-02": ("/problems/invalid-period", "after today"),
        "from=2026-13-01&to=2026-01-31": ("/problems/invalid-request", "query.from"),
        "to=2026-01-31": ("/problems/invalid-request", "query.from"),
        "from=2026-01-01&to=2026-01-31&by=desk": ("/problems/invalid-request", "query.by"),
    }
    for query, (kind, words) in cases.items():
        reply = await api.get(f"/v1/reports/tthc?{query}", monitor)
        assert reply.status_code == 422 and reply.json()["type"] == kind, (query, reply.text)
        assert words in reply.text, (query, reply.text)
