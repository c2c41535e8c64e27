"""`lienthong report` in-process on the mix of tests/services/test_report.py (audit logs
written as the workflow writes them), and monitoring tokens from `agencies issue-token`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from services.tokens import authenticate
from tests.services.test_report import MIX, TINH_DAT_DAI, XA_DAT_DAI, XA_HO_TICH, _sum
from tests.workers.conftest import Cli

PERIOD = ("--from", "2026-01-01", "--to", "2026-01-31")


@pytest.fixture
def mixed(sqlite_cli: Cli) -> Cli:
    sqlite_cli.ok("definitions", "deploy")
    with sqlite_cli.sessions().begin() as session:
        for dossier in MIX:
            dossier.write(session)
    return sqlite_cli


def test_the_table_shows_the_form_with_every_figure(mixed: Cli) -> None:
    out = mixed.ok("report", *PERIOD).splitlines()
    assert out[:3] == ["Biểu 06/VPCP/KSTT: TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH TẠI CƠ QUAN, ĐƠN VỊ TRỰC "
                       "TIẾP GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH",
                       "Kỳ báo cáo: từ ngày 01/01/2026 đến ngày 31/01/2026", "Đơn vị tính: Số hồ sơ TTHC"]
    assert out[4].split() == [f"({n})" for n in range(1, 14)]
    rows = [line.split() for line in out[5:11]]
    xa = _sum(XA_HO_TICH, XA_DAT_DAI)
    assert rows == [
        ["Tổng", "cộng", *map(str, _sum(xa, TINH_DAT_DAI))],
        ["I", "Cấp", "tỉnh", *map(str, TINH_DAT_DAI)],
        ["1", "Đất", "đai", *map(str, TINH_DAT_DAI)],
        ["II", "Cấp", "xã", *map(str, xa)],
        ["1", "Đất", "đai", *map(str, XA_DAT_DAI)],
        ["2", "Hộ", "tịch", *map(str, XA_HO_TICH)],
    ]


def test_csv_json_and_xlsx_carry_the_same_figures(mixed: Cli, tmp_path: Path) -> None:
    lines = list(csv.DictReader(io.StringIO(mixed.ok("report", *PERIOD, "--format", "csv", "--by", "sector"))))
    document = json.loads(mixed.ok("report", *PERIOD, "--format", "json", "--by", "sector"))
    assert document["form"] == "Biểu 06/VPCP/KSTT" and document["by"] == "sector" and document["complete"] is True
    assert document["starts_at"] == "2025-12-31T17:00:00Z" and document["timezone"] == "Asia/Ho_Chi_Minh"
    assert [{k: str(v) for k, v in row.items() if k not in ("kind", "code", "level")} for row in document["rows"]] \
        == [{k: v for k, v in line.items() if k not in ("kind", "code", "level")} for line in lines]
    assert [line["code"] for line in lines] == ["", "G13-TN01", "G15-TP07"]

    target = tmp_path / "bieu06.xlsx"
    result = mixed("report", *PERIOD, "--format", "xlsx", "--out", str(target))
    assert result.code == 0 and result.out == ""
    assert result.err.strip() == f"Biểu 06/VPCP/KSTT 2026-01-01..2026-01-31 by level written to {target}"
    sheet = load_workbook(target).active
    assert sheet is not None
    assert sheet["A1"].value == "Biểu 06/VPCP/KSTT" and sheet["B10"].value == "Tổng cộng"
    assert [sheet.cell(10, n).value for n in range(3, 14)] == list(_sum(XA_HO_TICH, XA_DAT_DAI, TINH_DAT_DAI))

    written = tmp_path / "bieu06.csv"
    assert mixed.ok("report", *PERIOD, "--format", "csv", "--out", str(written)) == ""
    assert written.read_text(encoding="utf-8") == mixed.ok("report", *PERIOD, "--format", "csv")


@pytest.mark.parametrize(("args", "expected"), [
    (("--format", "xlsx"), "--format xlsx writes a workbook (binary): give --out FILE, e.g. --out bieu06.xlsx"),
    (("--from", "2026-01-32", "--to", "2026-02-01"),
     "--from '2026-01-32' is not a date: expected YYYY-MM-DD, e.g. 2026-01-01"),
    (("--from", "2026-02-01", "--to", "2026-01-01"),
     "the period ends (2026-01-01) before it starts (2026-02-01): --to/`to` is the last day of the period, "
     "not before --from/`from`"),
    (("--from", "2025-01-01", "--to", "2026-01-31"),
     "the period 2025-01-01..2026-01-31 is 396 days long; a report covers at most 366 days (MAX_REPORT_DAYS): "
     "report a year at a time"),
    (("--from", "2999-01-01", "--to", "2999-01-31"), "the period starts on 2999-01-01, after today"),
])
def test_bad_requests_get_one_line_and_write_nothing(mixed: Cli, tmp_path: Path, args: tuple[str, ...],
                                                     expected: str) -> None:
    full = ("--from", "2026-01-01", "--to", "2026-01-31", *args) if args[0] == "--format" else args
    assert expected in mixed.refused("report", *full)
    assert list(tmp_path.glob("*.xlsx")) == []


def test_out_must_be_a_file(mixed: Cli, tmp_path: Path) -> None:
    assert mixed.refused("report", *PERIOD, "--out", str(tmp_path)) == \
        f"--out {tmp_path} is a directory: give a file name"


def test_monitoring_tokens_are_issued_listed_and_read_as_such(sqlite_cli: Cli) -> None:
    sqlite_cli.ok("definitions", "deploy")
    result = sqlite_cli("agencies", "issue-token", "ubnd-tinh", "--role", "monitoring")
    assert result.code == 0 and "(monitoring: reads reports only)" in result.err
    token = result.out.strip()
    agency_token = sqlite_cli.ok("agencies", "issue-token", "bpmc-tinh").strip()
    with sqlite_cli.sessions()() as session:
        monitor, agency = authenticate(session, token), authenticate(session, agency_token)
    assert monitor is not None and (monitor.agency, monitor.role) == ("ubnd-tinh", "monitoring")
    assert agency is not None and (agency.agency, agency.role) == ("bpmc-tinh", "agency")
    listing = [line.split()[:3] for line in sqlite_cli.ok("agencies", "tokens").splitlines()]
    assert listing[0] == ["ID", "AGENCY", "ROLE"]
    assert sorted(row[1:] for row in listing[1:]) == [["bpmc-tinh", "agency"], ["ubnd-tinh", "monitoring"]]
    with pytest.raises(SystemExit) as usage:  # argparse's usage error
        sqlite_cli("agencies", "issue-token", "ubnd-tinh", "--role", "operator")
    assert usage.value.code == 2
    assert "argument --role: invalid choice: 'operator' (choose from 'agency', 'monitoring')" in \
        sqlite_cli.capsys.readouterr().err
