"""/v1/reports: the province's periodic reports, for monitoring tokens
(`lienthong agencies issue-token CODE --role monitoring`); an agency's token is refused
(403 wrong-role): the figures cover every agency's dossiers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from gateway.auth import Monitor
from gateway.context import GatewayContext, get_context
from gateway.problems import GatewayProblem
from gateway.responses import AGENCY, problems
from services import report as reports

router = APIRouter(prefix="/v1/reports", responses=problems(*AGENCY, 403))
Context = Annotated[GatewayContext, Depends(get_context)]
CSV = "text/csv"


@router.get("/tthc", operation_id="readReportTthc", response_model=reports.Report, tags=["reports"],
            summary="Biểu 06/VPCP/KSTT: dossiers received, resolved and in progress over a period",
            responses={200: {"content": {CSV: {}, reports.XLSX_MEDIA_TYPE: {}}}})
async def read_tthc(
    request: Request, caller: Monitor, context: Context,
    first_day: Annotated[date, Query(alias="from", description="the period's first day (local), e.g. 2026-01-01")],
    last_day: Annotated[date, Query(alias="to", description="the period's last day (local), included")],
    by: Annotated[reports.Grouping, Query(description="rows: by level then sector as the form is, by sector, "
                                                      "by receiving desk or by procedure")] = "level",
) -> reports.Report | Response:
    """The 13 columns of Biểu 06 computed from the audit log (README "The Biểu 06 report"
    defines each). JSON by default; `Accept: text/csv` or the XLSX media type gives the
    same columns as a file. A period not over yet is reported as of now (`complete`
    false)."""
    now = datetime.now(UTC)
    try:
        made = await context.read(lambda session: reports.build_report(
            session, first_day, last_day, by, options=context.report_options, now=now))
    except reports.ReportError as err:
        raise GatewayProblem("invalid-period", str(err)) from None
    accept = request.headers.get("accept", "")
    name = f"bieu06-{made.first_day}-{made.last_day}-{made.by}"
    if reports.XLSX_MEDIA_TYPE in accept:
        return Response(reports.to_xlsx(made), media_type=reports.XLSX_MEDIA_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    if CSV in accept:
        return Response(reports.to_csv(made), media_type=f"{CSV}; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return made
