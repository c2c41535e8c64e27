"""Biểu 06/VPCP/KSTT: the periodic report of how dossiers were received and resolved
(Circular 01/2020/TT-VPCP), computed from the audit log for any past period.

One service for `lienthong report` and `GET /v1/reports/tthc`. The figures of a period
``[starts_at, ends_at)`` (local midnights of its first day and of the day after its
last, in the province's time zone; ``ends_at`` is *now* while the period is not over)
come from the audit log (``dossier_events``), read up to ``ends_at`` only, so a past
period gives the same figures whenever it is asked for (unless a receipt is back-dated
into it later: its ``received`` event carries the legal receipt instant). The projection
(``dossiers``) gives what does not change in time: procedure, sector, level, channel,
the verdict the workflow judged when the dossier was resolved, and its legal due.

For one dossier (README "The Biểu 06 report" has each column's source):

* *received* at its ``received`` event; never-received (``submitted``) and refused
  (``not_received``) dossiers have none and count nowhere;
* *resolved* at its end event, Decision 766's priority: ``result_ready`` (status 9),
  else ``completed`` (10), else ``withdrawn`` / ``rejected`` (8);
* *carried over* (col. 6): received before the period, not resolved before it;
* *in progress* (col. 11): received before ``ends_at``, not resolved before it; overdue
  (col. 13) if the workflow had recorded its due passed (``dossier_overdue``) before
  ``ends_at``, or, when it was not waiting for the applicant then, if its legal due
  (``original_due_at``) is before ``ends_at``. A dossier waiting for the applicant at
  ``ends_at`` (its last pause event not followed by ``resubmitted``) has its clock
  stopped: overdue only if the workflow had recorded it late before, or within time
  whatever happened with ``report_paused_within_time``. The legal due is the one the
  projection holds now: a supplement pause or a calendar change after ``ends_at`` that
  moved it later is not undone (a due recorded passed before ``ends_at`` still counts).

So column 3 = 4 + 5 + 6 = 7 + 11 in every row: what the period had on hand was either
resolved in it or is still in progress at its end.

The figures are grouped in SQL (one statement, bounded output: one row per group); the
statement reads the audit log's report index (``ix_dossier_events_report``, migration
0010) up to the period's end. The period is at most MAX_REPORT_DAYS long.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, bindparam, case, func, literal, not_, or_, select
from sqlalchemy.orm import Session

from config.settings import Settings
from definitions.limits import MAX_REPORT_DAYS
from services.instants import UtcInstant
from store.models import REPORT_EVENT_KINDS, AgencyRow, DossierEventRow, DossierRow, SectorRow
from workflows.payloads import APPLICANT_TURN_OPENED_BY

FORM = "Biểu 06/VPCP/KSTT"
TITLE = ("TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH TẠI CƠ QUAN, ĐƠN VỊ TRỰC TIẾP "
         "GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH")
UNIT = "Đơn vị tính: Số hồ sơ TTHC"
Grouping = Literal["level", "sector", "agency", "procedure"]
GROUPINGS: tuple[str, ...] = get_args(Grouping)

# Levels of agencies.yaml and how the form names them, in the form's order; a level not
# listed here is shown by its code, after these.
LEVEL_NAMES = {"tinh": "Cấp tỉnh", "huyen": "Cấp huyện", "xa": "Cấp xã",
               "trung-uong": "Cơ quan ngành dọc trung ương tại địa phương"}
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")

PAUSES = tuple(APPLICANT_TURN_OPENED_BY.values())  # the applicant holds the dossier from here
FIGURES = ("received_total", "received_online", "received_in_person_postal", "carried_over",
           "resolved_total", "resolved_early", "resolved_on_time", "resolved_late",
           "in_progress_total", "in_progress_within_time", "in_progress_overdue")


@dataclass(frozen=True)
class Column:
    number: int
    key: str
    header: str  # the form's header (Vietnamese)
    english: str


COLUMNS = (
    Column(1, "no", "STT", "no."),
    Column(2, "name", "Lĩnh vực, công việc giải quyết theo cấp", "sector / work by level"),
    Column(3, "received_total", "Tổng số", "received: total"),
    Column(4, "received_online", "Số mới tiếp nhận trực tuyến", "received online"),
    Column(5, "received_in_person_postal", "Số mới tiếp nhận trực tiếp và qua dịch vụ bưu chính",
           "received in person or by post"),
    Column(6, "carried_over", "Số kỳ trước chuyển qua", "carried over from the previous period"),
    Column(7, "resolved_total", "Tổng số", "resolved: total"),
    Column(8, "resolved_early", "Trả trước hạn", "resolved early"),
    Column(9, "resolved_on_time", "Trả đúng thời hạn", "resolved on time"),
    Column(10, "resolved_late", "Trả quá hạn", "resolved late"),
    Column(11, "in_progress_total", "Tổng số", "in progress: total"),
    Column(12, "in_progress_within_time", "Chưa đến hạn", "in progress within time"),
    Column(13, "in_progress_overdue", "Quá hạn", "in progress overdue"),
)
# The form's header groups over columns 3-13: (first, last, title).
GROUPS = ((3, 6, "Số hồ sơ nhận giải quyết"), (7, 10, "Số hồ sơ đã giải quyết"),
          (11, 13, "Số hồ sơ đang giải quyết"))


def group_of(number: int) -> str:
    """The header group a column of 3-13 is under."""
    return next(title for first, last, title in GROUPS if first <= number <= last)


class ReportError(ValueError):
    """A period or grouping that cannot be reported; the message says what was expected."""


# --------------------------------------------------------------------------- the period


@dataclass(frozen=True)
class Period:
    first_day: date
    last_day: date
    starts_at: datetime  # local midnight of first_day (UTC)
    ends_at: datetime  # local midnight after last_day, or `now` if that is earlier (UTC)
    timezone: str

    @property
    def complete(self) -> bool:
        """Whether the period is over (else its figures are as of `ends_at`)."""
        return self.ends_at == _midnight(self.last_day + timedelta(days=1), self.timezone)


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC)


def parse_day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{name} {text!r} is not a date: expected YYYY-MM-DD, e.g. 2026-01-01") from None


def period(first_day: date, last_day: date, zone: str, now: datetime) -> Period:
    """The instants a report of days `first_day`..`last_day` (both included) covers."""
    if last_day < first_day:
        raise ReportError(f"the period ends ({last_day.isoformat()}) before it starts ({first_day.isoformat()}): "
                          "--to/`to` is the last day of the period, not before --from/`from`")
    days = (last_day - first_day).days + 1
    if days > MAX_REPORT_DAYS:
        raise ReportError(f"the period {first_day.isoformat()}..{last_day.isoformat()} is {days} days long; a report "
                          f"covers at most {MAX_REPORT_DAYS} days (MAX_REPORT_DAYS): report a year at a time")
    starts_at = _midnight(first_day, zone)
    if starts_at > now:
        raise ReportError(f"the period starts on {first_day.isoformat()}, after today "
                          f"({now.astimezone(ZoneInfo(zone)).date().isoformat()} in {zone}): nothing to report yet")
    ends_at = min(_midnight(last_day + timedelta(days=1), zone), now.astimezone(UTC))
    return Period(first_day, last_day, starts_at, ends_at, zone)


# --------------------------------------------------------------------------- the answer


_DEFAULT = {name: f.default for name, f in Settings.model_fields.items()}


class Rules(BaseModel):
    """The choices the figures were computed with (config/settings.py)."""

    paused_within_time: bool = Field(default=_DEFAULT["report_paused_within_time"],
                                     description="LIENTHONG_REPORT_PAUSED_WITHIN_TIME")
    withdrawn_on_time: bool = Field(default=_DEFAULT["report_withdrawn_on_time"],
                                    description="LIENTHONG_REPORT_WITHDRAWN_ON_TIME")


@dataclass(frozen=True)
class ReportOptions:
    """What a report is computed with, from the settings (read once by a long-lived process)."""

    timezone: str = _DEFAULT["province_timezone"]
    rules: Rules = field(default_factory=Rules)

    @classmethod
    def of(cls, settings: Settings) -> ReportOptions:
        return cls(settings.province_timezone, Rules(paused_within_time=settings.report_paused_within_time,
                                                     withdrawn_on_time=settings.report_withdrawn_on_time))


class ReportRow(BaseModel):
    """One line of the form: columns 1 and 2, then the eleven figures (columns 3-13)."""

    kind: Literal["total", "level", "sector", "agency", "procedure"]
    no: str = Field(description="column 1: I, II... for a level, 1, 2... below it; empty for the total")
    name: str = Field(description="column 2")
    code: str | None = Field(default=None, description="the level, sector, agency or procedure code")
    level: str | None = Field(default=None, description="the level a sector row is under (grouping by level)")
    received_total: int = 0
    received_online: int = 0
    received_in_person_postal: int = 0
    carried_over: int = 0
    resolved_total: int = 0
    resolved_early: int = 0
    resolved_on_time: int = 0
    resolved_late: int = 0
    in_progress_total: int = 0
    in_progress_within_time: int = 0
    in_progress_overdue: int = 0

    def figures(self) -> tuple[int, ...]:
        return tuple(getattr(self, key) for key in FIGURES)

    def add(self, other: ReportRow) -> None:
        for key in FIGURES:
            setattr(self, key, getattr(self, key) + getattr(other, key))


class Report(BaseModel):
    form: str = FORM
    title: str = TITLE
    first_day: date = Field(description="the period's first day (local)")
    last_day: date = Field(description="the period's last day (local), included")
    starts_at: UtcInstant
    ends_at: UtcInstant = Field(description="the end of the last day, or the instant the report was made if "
                                            "the period is not over (the figures are as of then)")
    complete: bool = Field(description="false while the period is not over")
    timezone: str
    by: Grouping
    rules: Rules
    rows: list[ReportRow] = Field(description="the total first, then the groups (by level: each level, then "
                                              "its sectors)")
    warnings: list[str] = Field(default_factory=list)

    @property
    def total(self) -> ReportRow:
        return self.rows[0]


# --------------------------------------------------------------------------- the query


def _literal_kinds(name: str, kinds: Sequence[str]) -> Any:
    """Kinds rendered into the SQL: SQLite matches a partial index's condition only
    against literal values (monitoring/collector.py does the same)."""
    return bindparam(name, tuple(kinds), expanding=True, literal_execute=True)


def _when(condition: ColumnElement[bool], value: Any) -> Any:
    return case((condition, value))


def _count(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _figures_query(p: Period, by: Grouping, rules: Rules) -> Any:
    ev = DossierEventRow
    kind = ev.kind
    per_dossier = (
        select(
            ev.dossier_id.label("dossier_id"),
            func.min(_when(kind == "received", ev.at)).label("received_at"),
            func.min(_when(kind == "received", ev.actor)).label("desk"),
            func.min(_when(kind == "result_ready", ev.at)).label("ready_at"),
            func.min(_when(kind == "completed", ev.at)).label("returned_at"),
            func.min(_when(kind == "withdrawn", ev.at)).label("withdrawn_at"),
            func.min(_when(kind == "rejected", ev.at)).label("rejected_at"),
            func.min(_when(kind == "dossier_overdue", ev.at)).label("overdue_at"),
            func.max(_when(kind.in_(PAUSES), ev.seq)).label("paused_seq"),
            func.max(_when(kind == "resubmitted", ev.seq)).label("resumed_seq"),
        )
        .where(kind.in_(_literal_kinds("report_kinds", REPORT_EVENT_KINDS)), ev.at < p.ends_at)
        .group_by(ev.dossier_id)
        .cte("per_dossier")
    )
    e = per_dossier.c
    d = DossierRow
    stopped_at = case((e.withdrawn_at.is_(None), e.rejected_at), (e.rejected_at.is_(None), e.withdrawn_at),
                      (e.withdrawn_at <= e.rejected_at, e.withdrawn_at), else_=e.rejected_at)
    end_at = func.coalesce(e.ready_at, e.returned_at, stopped_at)
    by_withdrawal = and_(e.ready_at.is_(None), e.returned_at.is_(None), e.withdrawn_at.is_not(None),
                         or_(e.rejected_at.is_(None), e.withdrawn_at <= e.rejected_at))

    new = e.received_at >= p.starts_at
    online = d.channel == "online"
    carried = and_(e.received_at < p.starts_at, or_(end_at.is_(None), end_at >= p.starts_at))
    resolved = and_(end_at.is_not(None), end_at >= p.starts_at)
    if rules.withdrawn_on_time:
        judged = and_(resolved, not_(by_withdrawal))
        on_time = or_(and_(judged, d.verdict == "on_time"), and_(resolved, by_withdrawal))
    else:
        judged = resolved
        on_time = and_(judged, d.verdict == "on_time")
    in_progress = end_at.is_(None)
    paused = and_(e.paused_seq.is_not(None), or_(e.resumed_seq.is_(None), e.paused_seq > e.resumed_seq))
    recorded_late = e.overdue_at.is_not(None)
    late_while_paused: ColumnElement[bool] = literal(False) if rules.paused_within_time else recorded_late
    overdue = and_(in_progress, case((paused, late_while_paused),
                                     else_=or_(recorded_late, d.original_due_at < p.ends_at)))

    grouped: dict[str, list[Any]] = {
        "level": [d.level, d.sector],
        "sector": [d.sector],
        "agency": [e.desk],
        "procedure": [d.procedure_code],
    }
    keys = grouped[by]
    return (
        select(
            *keys,
            func.max(d.procedure_name),
            _count(or_(new, carried)),
            _count(and_(new, online)),
            _count(and_(new, not_(online))),
            _count(carried),
            _count(resolved),
            _count(and_(judged, d.verdict == "early")),
            _count(on_time),
            _count(and_(judged, d.verdict == "late")),
            _count(in_progress),
            _count(and_(in_progress, not_(overdue))),
            _count(overdue),
            _count(and_(resolved, d.verdict.is_(None))),
        )
        .select_from(per_dossier)
        .join(d, d.id == e.dossier_id)
        .where(e.received_at.is_not(None), or_(new, carried, resolved, in_progress))
        .group_by(*keys)
    )


def build_report(session: Session, first_day: date, last_day: date, by: str, *,
                 options: ReportOptions = ReportOptions(), now: datetime | None = None) -> Report:
    """Biểu 06 for days `first_day`..`last_day` (included), grouped `by`."""
    if by not in GROUPINGS:
        raise ReportError(f"cannot group by {by!r}: expected one of {', '.join(GROUPINGS)}")
    grouping: Grouping = by  # type: ignore[assignment]
    now = now or datetime.now(UTC)
    p = period(first_day, last_day, options.timezone, now)
    rules = options.rules
    found = session.execute(_figures_query(p, grouping, rules)).all()
    width = 2 if grouping == "level" else 1
    groups: list[tuple[tuple[str, ...], str, tuple[int, ...]]] = []
    unjudged = 0
    for row in found:
        key = tuple(str(k) if k is not None else "" for k in row[:width])
        procedure_name = str(row[width])
        figures = tuple(int(v) for v in row[width + 1:width + 1 + len(FIGURES)])
        unjudged += int(row[-1])
        groups.append((key, procedure_name, figures))
    rows = _layout(session, grouping, groups)
    warnings = []
    if unjudged:
        warnings.append(f"{unjudged} resolved dossier(s) carry no verdict in the projection: counted in column 7 "
                        "only (run `lienthong dossiers resync` for them)")
    return Report(first_day=p.first_day, last_day=p.last_day, starts_at=p.starts_at, ends_at=p.ends_at,
                  complete=p.complete, timezone=p.timezone, by=grouping, rules=rules, rows=rows, warnings=warnings)


def _row(kind: Any, no: str, name: str, code: str | None, figures: Iterable[int], level: str | None = None
         ) -> ReportRow:
    return ReportRow(kind=kind, no=no, name=name, code=code, level=level, **dict(zip(FIGURES, figures, strict=True)))


def _level_order(level: str) -> tuple[int, str]:
    order = list(LEVEL_NAMES)
    return (order.index(level), "") if level in order else (len(order), level)


def _layout(session: Session, by: Grouping, groups: list[tuple[tuple[str, ...], str, tuple[int, ...]]]
            ) -> list[ReportRow]:
    total = _row("total", "", "Tổng cộng", None, (0,) * len(FIGURES))
    rows = [total]
    if by == "level":
        sectors = dict(session.execute(select(SectorRow.code, SectorRow.name)).tuples().all())
        levels: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        for (level, sector), _, figures in groups:
            levels.setdefault(level, []).append((sector, figures))
        for index, level in enumerate(sorted(levels, key=_level_order)):
            level_row = _row("level", ROMAN[index] if index < len(ROMAN) else str(index + 1),
                             LEVEL_NAMES.get(level, level), level, (0,) * len(FIGURES))
            rows.append(level_row)
            for number, (sector, figures) in enumerate(sorted(levels[level]), start=1):
                sector_row = _row("sector", str(number), sectors.get(sector, sector), sector, figures, level)
                level_row.add(sector_row)
                rows.append(sector_row)
            total.add(level_row)
        return rows
    names: dict[str, str] = {}
    if by == "sector":
        names = dict(session.execute(select(SectorRow.code, SectorRow.name)).tuples().all())
    elif by == "agency":
        names = dict(session.execute(select(AgencyRow.code, AgencyRow.name)).tuples().all())
    for number, ((code,), procedure_name, figures) in enumerate(sorted(groups), start=1):
        name = procedure_name if by == "procedure" else names.get(code, code)
        row = _row(by, str(number), name, code, figures)
        total.add(row)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- formats


def period_line(report: Report) -> str:
    line = f"Kỳ báo cáo: từ ngày {report.first_day:%d/%m/%Y} đến ngày {report.last_day:%d/%m/%Y}"
    if not report.complete:
        as_of = report.ends_at.astimezone(ZoneInfo(report.timezone))
        line += f" (số liệu đến {as_of:%H:%M %d/%m/%Y})"
    return line


def _cells(row: ReportRow) -> list[str | int]:
    return [row.no, row.name, *row.figures()]


def to_csv(report: Report) -> str:
    """One header line of column keys, then the rows: the JSON's columns, flat."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kind", "code", "level", *(c.key for c in COLUMNS)])
    for row in report.rows:
        writer.writerow([row.kind, row.code or "", row.level or "", *_cells(row)])
    return out.getvalue()


def to_table(report: Report) -> list[list[str]]:
    """Rows for a terminal: the column numbers as the header (README lists them)."""
    table = [[f"({c.number})" for c in COLUMNS]]
    for row in report.rows:
        indent = "  " if row.kind == "sector" else ""
        table.append([row.no, indent + row.name, *(str(v) for v in row.figures())])
    return table


def table_lines(report: Report) -> list[str]:
    """The terminal rendering: the form's name and period, then the table (numbers right-aligned)."""
    table = to_table(report)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [f"{FORM}: {TITLE}", period_line(report), UNIT, ""]
    for row in table:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    lines += [f"({c.number}) {group_of(c.number)}: {c.header} — {c.english}" for c in COLUMNS[2:]]
    lines += [f"warning: {w}" for w in report.warnings]
    return lines


def to_xlsx(report: Report) -> bytes:
    """The form as a workbook: its name, title and period, the grouped header rows, the
    column numbers 1-13, then the rows."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Biểu 06"
    last = get_column_letter(len(COLUMNS))
    bold = Font(bold=True)
    centre = Alignment(horizontal="center", vertical="center", wrap_text=True)
    thin = Side(style="thin")
    box = Border(left=thin, right=thin, top=thin, bottom=thin)

    sheet["A1"] = FORM
    sheet["A1"].font = bold
    for row_number, text in ((2, TITLE), (3, period_line(report)), (4, UNIT)):
        sheet.merge_cells(f"A{row_number}:{last}{row_number}")
        cell = sheet[f"A{row_number}"]
        cell.value = text
        cell.alignment = centre
        cell.font = Font(bold=row_number == 2)
    top, middle, bottom, numbers = 6, 7, 8, 9
    # Columns 1 and 2 span the three header rows; each group spans its columns' width.
    for column in COLUMNS[:2]:
        letter = get_column_letter(column.number)
        sheet.merge_cells(f"{letter}{top}:{letter}{bottom}")
        sheet[f"{letter}{top}"] = column.header
    sheet.merge_cells(f"C{top}:F{top}")
    sheet[f"C{top}"] = GROUPS[0][2]
    sheet.merge_cells(f"G{top}:M{top}")
    sheet[f"G{top}"] = "Kết quả giải quyết"
    sheet.merge_cells(f"C{middle}:C{bottom}")
    sheet[f"C{middle}"] = COLUMNS[2].header
    sheet.merge_cells(f"D{middle}:F{middle}")
    sheet[f"D{middle}"] = "Trong đó"
    for first, last_column, title in GROUPS[1:]:
        sheet.merge_cells(f"{get_column_letter(first)}{middle}:{get_column_letter(last_column)}{middle}")
        sheet[f"{get_column_letter(first)}{middle}"] = title
    for column in COLUMNS[3:]:
        sheet.cell(row=bottom, column=column.number, value=column.header)
    for column in COLUMNS:
        sheet.cell(row=numbers, column=column.number, value=f"({column.number})")
    for row_cells in sheet.iter_rows(min_row=top, max_row=numbers, max_col=len(COLUMNS)):
        for cell in row_cells:
            cell.alignment = centre
            cell.font = bold
            cell.border = box
    for index, row in enumerate(report.rows, start=numbers + 1):
        for number, value in enumerate(_cells(row), start=1):
            cell = sheet.cell(row=index, column=number, value=value)
            cell.border = box
            if row.kind in ("total", "level"):
                cell.font = bold
            if number == 2 and row.kind == "sector":
                cell.alignment = Alignment(indent=1)
    sheet.column_dimensions["A"].width = 6
    sheet.column_dimensions["B"].width = 42
    for column in COLUMNS[2:]:
        sheet.column_dimensions[get_column_letter(column.number)].width = 13
    sheet.freeze_panes = f"C{numbers + 1}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
