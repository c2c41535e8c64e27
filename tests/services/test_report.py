"""Biểu 06 from audit logs written as the workflow writes them (store writes): every cell
of a mix checked by hand, the choices of config/settings.py, the period's bounds and
time zone, the groupings and the formats. Runs on SQLite and PostgreSQL.
(tests/workers/test_report_e2e.py drives the same kinds of dossiers through the real
workflow.)"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from services import report as reports
from services.report import Report, ReportError, ReportOptions, build_report
from store.projection import write_changes
from workflows.payloads import DossierEvent, DossierState, DossierStatus, StoreWrite

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
JAN_1, JAN_31 = date(2026, 1, 1), date(2026, 1, 31)
AFTER = datetime(2026, 3, 1, tzinfo=UTC)  # "now" for a period that is over
DESK_XA, DESK_TINH = "bpmc-xa-xa-tan-lap", "bpmc-tinh"
HO_TICH, DAT_DAI = "G15-TP07", "G13-TN01"


def local(text: str) -> datetime:
    """An instant written in Vietnam time, e.g. '2026-01-05 09:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=HCM)


@dataclass
class Dossier:
    """A dossier's audit log (kinds at local instants) and what its projection says."""

    id: str
    level: str
    sector: str
    channel: str
    events: list[tuple[str, str]]
    verdict: str | None = None
    due: str = "2026-06-01 17:00"  # the legal due (original_due_at)
    desk: str = field(default="")

    def write(self, session: Session) -> None:
        desk = self.desk or (DESK_XA if self.level == "xa" else DESK_TINH)
        events = [DossierEvent(dossier_id=self.id, seq=seq, kind=kind, at=local(at),
                               actor=desk if kind == "received" else "system")
                  for seq, (kind, at) in enumerate(self.events, start=1)]
        # The status the last of its status events left it in (the report reads events, not statuses).
        status = DossierStatus.PROCESSING
        for kind, _ in self.events:
            status = STATUS_AFTER.get(kind, status)
        at = {kind: local(when) for kind, when in self.events}
        state = DossierState(
            dossier_id=self.id, procedure_code="P-" + self.sector, procedure_version=1,
            procedure_name=f"Thủ tục {self.sector}", content_hash="0" * 64, sector=self.sector, level=self.level,
            calendar="vn-gov", channel=self.channel, status=status, received_at=events[0].at,  # type: ignore[arg-type]
            original_due_at=local(self.due), due_at=local(self.due), verdict=self.verdict,  # type: ignore[arg-type]
            finished_at=at.get("result_ready"),
            completed_at=at.get("completed") or at.get("withdrawn") or at.get("rejected") or at.get("not_received"))
        write_changes(session, StoreWrite(events=events, state=state))


STATUS_AFTER = {
    "submitted": DossierStatus.SUBMITTED, "not_received": DossierStatus.NOT_RECEIVED,
    "received": DossierStatus.PROCESSING, "resubmitted": DossierStatus.PROCESSING,
    "supplement_requested": DossierStatus.AWAITING_SUPPLEMENT, "obligation_requested": DossierStatus.AWAITING_OBLIGATION,
    "withdrawn": DossierStatus.WITHDRAWN, "rejected": DossierStatus.REJECTED,
    "result_ready": DossierStatus.RESULT_READY, "completed": DossierStatus.COMPLETED,
}

# The mix: each dossier's expected place in January 2026 is in its comment.
MIX = [
    # xa / Hộ tịch
    Dossier("A", "xa", HO_TICH, "in_person", [("received", "2025-12-20 09:00"), ("result_ready", "2026-01-05 10:00"),
                                               ("completed", "2026-01-06 10:00")], "on_time"),  # carried; on time
    Dossier("B", "xa", HO_TICH, "online", [("submitted", "2026-01-09 20:00"), ("received", "2026-01-10 08:00"),
                                            ("result_ready", "2026-01-12 15:00")], "early"),  # new online; early
    # Back-dated: received on paper on the 15th, entered later (the event's instant is the receipt's).
    Dossier("C", "xa", HO_TICH, "postal", [("received", "2026-01-15 09:00")], due="2026-02-10 17:00"),  # within
    Dossier("D", "xa", HO_TICH, "in_person", [("received", "2026-01-20 09:00"), ("dossier_overdue", "2026-01-25 17:00")],
            due="2026-01-25 17:00"),  # new in person; overdue
    Dossier("N", "xa", HO_TICH, "in_person", [("received", "2026-01-03 09:00"), ("supplement_requested", "2026-01-05 09:00"),
                                               ("resubmitted", "2026-01-09 09:00"), ("result_ready", "2026-01-20 09:00")],
            "on_time"),  # new in person; on time
    # Received 23:30 on 31 December, Vietnam time (16:30 UTC): the previous period's.
    Dossier("P", "xa", HO_TICH, "in_person", [("received", "2025-12-31 23:30")], due="2026-03-01 17:00"),  # carried; within
    # xa / Đất đai
    Dossier("E", "xa", DAT_DAI, "in_person", [("received", "2026-01-05 09:00"), ("dossier_overdue", "2026-01-07 17:00"),
                                               ("supplement_requested", "2026-01-08 09:00")],
            due="2026-01-07 17:00"),  # new; waits for the applicant, late before: overdue (within if paused_within_time)
    Dossier("F", "xa", DAT_DAI, "online", [("received", "2026-01-06 09:00"), ("withdrawal_requested", "2026-01-09 09:00"),
                                            ("withdrawn", "2026-01-09 09:00")],
            "late"),  # new online; resolved late (on time if withdrawn_on_time)
    Dossier("O", "xa", DAT_DAI, "in_person", [("received", "2025-12-01 09:00"), ("obligation_requested", "2025-12-20 09:00")],
            due="2025-12-25 17:00"),  # carried; paying, its clock stopped before its due: within
    # tinh / Đất đai
    Dossier("G", "tinh", DAT_DAI, "in_person", [("received", "2025-11-01 09:00"), ("result_ready", "2025-12-15 09:00"),
                                                 ("completed", "2026-01-03 09:00")], "on_time"),  # resolved before: nowhere
    Dossier("H", "tinh", DAT_DAI, "in_person", [("received", "2025-12-28 09:00"), ("rejected", "2026-01-20 09:00")],
            "late"),  # carried; resolved late
    Dossier("I", "tinh", DAT_DAI, "online", [("submitted", "2026-01-10 09:00"), ("not_received", "2026-01-11 09:00")]),
    Dossier("J", "tinh", DAT_DAI, "online", [("submitted", "2026-01-30 09:00")]),  # never received: nowhere
    Dossier("K", "tinh", DAT_DAI, "in_person", [("received", "2026-01-31 23:30")], due="2026-02-20 17:00"),  # within
    Dossier("L", "tinh", DAT_DAI, "in_person", [("received", "2026-02-01 00:10"),
                                                 ("result_ready", "2026-02-02 09:00")], "early"),  # February's
    # Its legal due passed on the 30th without the workflow saying so (an extension moved its appointment).
    Dossier("M", "tinh", DAT_DAI, "in_person", [("received", "2026-01-02 09:00"), ("extended", "2026-01-29 09:00"),
                                                 ("result_ready", "2026-02-03 09:00")],
            "late", due="2026-01-30 17:00"),  # new; in progress at the end, overdue
    Dossier("Q", "tinh", DAT_DAI, "in_person", [("received", "2026-01-20 09:00"), ("result_ready", "2026-01-31 23:59")],
            "late"),  # new; resolved late (the period's last minute)
]

# (3) received total, (4) online, (5) in person + postal, (6) carried over; (7) resolved, (8) early,
# (9) on time, (10) late; (11) in progress, (12) within time, (13) overdue.
XA_HO_TICH = (6, 1, 3, 2, 3, 1, 2, 0, 3, 2, 1)
XA_DAT_DAI = (3, 1, 1, 1, 1, 0, 0, 1, 2, 1, 1)
TINH_DAT_DAI = (4, 0, 3, 1, 2, 0, 0, 2, 2, 1, 1)


def _sum(*rows: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sum(column) for column in zip(*rows, strict=True))


@pytest.fixture
def mix(deployed_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with deployed_sessions.begin() as session:
        for dossier in MIX:
            dossier.write(session)
    return deployed_sessions


def _report(sessions: sessionmaker[Session], by: str = "level", first: date = JAN_1, last: date = JAN_31,
            now: datetime = AFTER, **rules: bool) -> Report:
    settings = Settings(**{f"report_{name}": value for name, value in rules.items()})  # type: ignore[arg-type]
    with sessions() as session:
        return build_report(session, first, last, by, options=ReportOptions.of(settings), now=now)


def _cells(made: Report) -> list[tuple[str, str, str, tuple[int, ...]]]:
    return [(row.kind, row.no, row.code or "", row.figures()) for row in made.rows]


def test_every_cell_of_the_mix_by_level_then_sector(mix: sessionmaker[Session]) -> None:
    made = _report(mix)
    xa = _sum(XA_HO_TICH, XA_DAT_DAI)
    assert _cells(made) == [
        ("total", "", "", _sum(xa, TINH_DAT_DAI)),
        ("level", "I", "tinh", TINH_DAT_DAI),
        ("sector", "1", DAT_DAI, TINH_DAT_DAI),
        ("level", "II", "xa", xa),
        ("sector", "1", DAT_DAI, XA_DAT_DAI),
        ("sector", "2", HO_TICH, XA_HO_TICH),
    ]
    assert [row.name for row in made.rows] == ["Tổng cộng", "Cấp tỉnh", "Đất đai", "Cấp xã", "Đất đai", "Hộ tịch"]
    assert made.complete and made.warnings == []
    assert made.starts_at == datetime(2025, 12, 31, 17, tzinfo=UTC)  # local midnights
    assert made.ends_at == datetime(2026, 1, 31, 17, tzinfo=UTC)
    for row in made.rows:  # the form's identities: 3 = 4 + 5 + 6 = 7 + 11, 7 = 8 + 9 + 10, 11 = 12 + 13
        f = row.figures()
        assert f[0] == f[1] + f[2] + f[3] == f[4] + f[8], row
        assert f[4] == f[5] + f[6] + f[7] and f[8] == f[9] + f[10], row


def test_the_choices_in_the_settings_move_only_their_dossiers(mix: sessionmaker[Session]) -> None:
    with mix.begin() as session:  # late, then supplemented and back at the agency: not waiting any more
        Dossier("R", "xa", DAT_DAI, "in_person", [
            ("received", "2026-01-05 09:00"), ("dossier_overdue", "2026-01-07 17:00"),
            ("supplement_requested", "2026-01-08 09:00"), ("resubmitted", "2026-01-12 09:00")],
            due="2026-01-07 17:00").write(session)
    assert _report(mix).rows[4].figures() == (4, 1, 2, 1, 1, 0, 0, 1, 3, 1, 2)
    paused = _report(mix, paused_within_time=True)
    # E waits for the applicant, late before it did: within time by this choice; R is overdue still.
    assert paused.rows[4].figures() == (4, 1, 2, 1, 1, 0, 0, 1, 3, 2, 1)
    assert paused.rules.paused_within_time and not paused.rules.withdrawn_on_time
    withdrawn = _report(mix, withdrawn_on_time=True)
    # F was withdrawn: on time by this choice, whatever the workflow judged.
    assert withdrawn.rows[4].figures() == (4, 1, 2, 1, 1, 0, 1, 0, 3, 1, 2)
    assert withdrawn.rows[3].figures() == _sum(XA_HO_TICH, (4, 1, 2, 1, 1, 0, 1, 0, 3, 1, 2))


def test_a_period_not_over_is_reported_as_of_now(mix: sessionmaker[Session]) -> None:
    now = local("2026-01-16 12:00")
    made = _report(mix, by="sector", now=now)
    assert not made.complete and made.ends_at == now
    by_code = {row.code: row.figures() for row in made.rows}
    # Hộ tịch by noon on the 16th: A carried and resolved on the 5th; B, N and the back-dated C new
    # (N still in progress: its result came on the 20th), P carried; D not received yet.
    assert by_code[HO_TICH] == (5, 1, 2, 2, 2, 1, 1, 0, 3, 3, 0)
    # Đất đai: E (late before its pause) and F (withdrawn) new, O and H carried, M new and within
    # its due of the 30th; G resolved before, Q and K not received yet.
    assert by_code[DAT_DAI] == (5, 1, 2, 2, 1, 0, 0, 1, 4, 3, 1)
    assert "số liệu đến 12:00 16/01/2026" in reports.period_line(made)


def test_the_previous_month_carries_into_the_next(mix: sessionmaker[Session]) -> None:
    december = _report(mix, by="sector", first=date(2025, 12, 1), last=date(2025, 12, 31))
    january = _report(mix, by="sector", first=JAN_1, last=JAN_31)
    for before, after in zip(december.rows, january.rows, strict=True):
        assert before.code == after.code
        assert after.carried_over == before.in_progress_total, after.code


def test_groupings_sum_to_the_same_total(mix: sessionmaker[Session]) -> None:
    total = _report(mix).total.figures()
    for by in ("sector", "agency", "procedure"):
        made = _report(mix, by=by)
        assert made.total.figures() == total, by
        assert made.total.figures() == _sum(*(row.figures() for row in made.rows[1:])), by
    agencies = {row.code: (row.name, row.figures()) for row in _report(mix, by="agency").rows[1:]}
    assert set(agencies) == {DESK_XA, DESK_TINH}
    assert agencies[DESK_TINH][0] == "Trung tâm Phục vụ hành chính công tỉnh"
    assert agencies[DESK_TINH][1] == TINH_DAT_DAI
    procedures = {row.code: row.name for row in _report(mix, by="procedure").rows[1:]}
    assert procedures == {f"P-{HO_TICH}": f"Thủ tục {HO_TICH}", f"P-{DAT_DAI}": f"Thủ tục {DAT_DAI}"}


def test_an_empty_store_reports_a_zero_total(deployed_sessions: sessionmaker[Session]) -> None:
    made = _report(deployed_sessions)
    assert _cells(made) == [("total", "", "", (0,) * 11)]


@pytest.mark.parametrize(("first", "last", "expected"), [
    (date(2026, 2, 1), JAN_31, "ends (2026-01-31) before it starts (2026-02-01)"),
    (date(2025, 1, 1), date(2026, 1, 2), "is 367 days long; a report covers at most 366 days (MAX_REPORT_DAYS)"),
    (date(2026, 3, 2), date(2026, 3, 31), "starts on 2026-03-02, after today (2026-03-01 in Asia/Ho_Chi_Minh)"),
])
def test_bad_periods_are_refused_saying_what_was_expected(deployed_sessions: sessionmaker[Session],
                                                          first: date, last: date, expected: str) -> None:
    with pytest.raises(ReportError) as refused:
        _report(deployed_sessions, first=first, last=last, now=datetime(2026, 3, 1, 10, tzinfo=UTC))
    assert expected in str(refused.value)


def test_a_leap_year_is_one_period(deployed_sessions: sessionmaker[Session]) -> None:
    made = _report(deployed_sessions, first=date(2028, 1, 1), last=date(2028, 12, 31),
                   now=datetime(2029, 1, 2, tzinfo=UTC))
    assert made.complete


def test_bad_grouping_and_day_are_refused(deployed_sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ReportError, match="cannot group by 'desk': expected one of level, sector, agency, procedure"):
        _report(deployed_sessions, by="desk")
    with pytest.raises(ReportError, match=r"--from '2026-13-01' is not a date: expected YYYY-MM-DD"):
        reports.parse_day("2026-13-01", "--from")


def test_the_day_boundaries_follow_the_province_time_zone(mix: sessionmaker[Session]) -> None:
    settings = Settings(province_timezone="UTC")
    with mix() as session:
        made = build_report(session, JAN_1, JAN_31, "sector", options=ReportOptions.of(settings), now=AFTER)
    by_code = {row.code: row.figures() for row in made.rows}
    # In UTC, P (23:30 on 31 December in Vietnam = 16:30 UTC) still is December's, and L
    # (00:10 on 1 February in Vietnam = 17:10 UTC on 31 January) becomes January's.
    assert made.starts_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert by_code[DAT_DAI][0] == 7 + 1  # L too
    with pytest.raises(ValueError, match="unknown time zone 'Asia/Hanoi1'"):
        Settings(province_timezone="Asia/Hanoi1")


def test_formats_carry_the_same_columns(mix: sessionmaker[Session]) -> None:
    made = _report(mix)
    rows = list(csv.reader(io.StringIO(reports.to_csv(made))))
    assert rows[0] == ["kind", "code", "level", "no", "name", *reports.FIGURES]
    assert [r[3:] for r in rows[1:]] == [[row.no, row.name, *map(str, row.figures())] for row in made.rows]
    assert json.loads(made.model_dump_json())["rows"][0]["received_total"] == made.total.received_total
    lines = reports.table_lines(made)
    assert lines[0].startswith("Biểu 06/VPCP/KSTT") and lines[1] == "Kỳ báo cáo: từ ngày 01/01/2026 đến ngày 31/01/2026"
    assert "(13) Số hồ sơ đang giải quyết: Quá hạn — in progress overdue" in lines

    book = load_workbook(io.BytesIO(reports.to_xlsx(made)))
    sheet = book.active
    assert sheet is not None
    values = [[cell for cell in row] for row in sheet.iter_rows(values_only=True)]
    assert values[0][0] == "Biểu 06/VPCP/KSTT"
    assert values[2][0] == "Kỳ báo cáo: từ ngày 01/01/2026 đến ngày 31/01/2026"
    assert values[5][:3] == ["STT", "Lĩnh vực, công việc giải quyết theo cấp", "Số hồ sơ nhận giải quyết"]
    assert values[6][3] == "Trong đó" and values[6][6] == "Số hồ sơ đã giải quyết"
    assert values[7][3:] == ["Số mới tiếp nhận trực tuyến", "Số mới tiếp nhận trực tiếp và qua dịch vụ bưu chính",
                             "Số kỳ trước chuyển qua", "Tổng số", "Trả trước hạn", "Trả đúng thời hạn", "Trả quá hạn",
                             "Tổng số", "Chưa đến hạn", "Quá hạn"]
    assert values[8] == [f"({n})" for n in range(1, 14)]
    assert values[9:] == [[row.no or None, row.name, *row.figures()] for row in made.rows]


def test_a_resolved_dossier_without_a_verdict_is_named_in_a_warning(deployed_sessions: sessionmaker[Session]) -> None:
    with deployed_sessions.begin() as session:
        Dossier("V", "xa", HO_TICH, "in_person", [("received", "2026-01-05 09:00"),
                                                   ("result_ready", "2026-01-06 09:00")]).write(session)
    made = _report(deployed_sessions)
    assert made.total.figures()[4:8] == (1, 0, 0, 0)
    assert made.warnings == ["1 resolved dossier(s) carry no verdict in the projection: counted in column 7 only "
                             "(run `lienthong dossiers resync` for them)"]


def test_the_period_bound_is_named(deployed_sessions: sessionmaker[Session]) -> None:
    made = _report(deployed_sessions, first=JAN_1, last=JAN_1 + timedelta(days=365), now=datetime(2027, 6, 1, tzinfo=UTC))
    assert (made.last_day - made.first_day).days + 1 == reports.MAX_REPORT_DAYS


def test_the_audit_log_is_read_from_the_report_index_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite's plan (PostgreSQL plans by table size): a covering search of the partial
    index of migration 0010 by kind and instant, never a scan of the audit log."""
    from sqlalchemy import text

    from store.db import make_engine
    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        p = reports.period(JAN_1, JAN_31, "Asia/Ho_Chi_Minh", AFTER)
        for by in reports.GROUPINGS:
            query = reports._figures_query(p, by, reports.Rules())  # type: ignore[arg-type]
            with engine.connect() as connection:
                sql = str(query.compile(connection, compile_kwargs={"literal_binds": True}))
                plan = [row[3] for row in connection.execute(text("EXPLAIN QUERY PLAN " + sql))]
            assert any(step.startswith("SEARCH dossier_events USING COVERING INDEX ix_dossier_events_report")
                       for step in plan), plan
            assert not any(step.startswith("SCAN dossier_events") for step in plan), plan
    finally:
        engine.dispose()
