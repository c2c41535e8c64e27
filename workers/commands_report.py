"""`lienthong report --from DATE --to DATE [--by level|sector|agency|procedure]
[--format table|csv|xlsx|json] [--out FILE]`: the Biểu 06/VPCP/KSTT report
(services/report.py), from the audit log in the database. Stdout without `--out`; a
workbook is binary, so `--format xlsx` needs `--out`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import Settings
from services import report as reports
from workers.commands_common import CliError, store_sessions

FORMATS = ("table", "csv", "xlsx", "json")


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "report", help="Biểu 06/VPCP/KSTT: dossiers received, resolved and in progress over a period")
    parser.add_argument("--from", dest="first", metavar="DATE", required=True,
                        help="the period's first day, YYYY-MM-DD (local, LIENTHONG_PROVINCE_TIMEZONE)")
    parser.add_argument("--to", dest="last", metavar="DATE", required=True,
                        help="the period's last day, included, YYYY-MM-DD")
    parser.add_argument("--by", choices=reports.GROUPINGS, default="level",
                        help="rows: by level then sector as the form is (default), by sector, by receiving "
                             "desk (agency) or by procedure")
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    parser.add_argument("--out", metavar="FILE", type=Path, help="write to FILE instead of stdout")
    parser.set_defaults(run=run_report)


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    if args.format == "xlsx" and args.out is None:
        raise CliError("--format xlsx writes a workbook (binary): give --out FILE, e.g. --out bieu06.xlsx")
    if args.out is not None and args.out.is_dir():
        raise CliError(f"--out {args.out} is a directory: give a file name")
    try:
        first = reports.parse_day(args.first, "--from")
        last = reports.parse_day(args.last, "--to")
        with store_sessions(settings) as sessions, sessions() as session:
            made = reports.build_report(session, first, last, args.by, options=reports.ReportOptions.of(settings),
                                        now=datetime.now(UTC))
    except reports.ReportError as err:
        raise CliError(str(err)) from err
    if args.format == "xlsx":
        _write(args.out, reports.to_xlsx(made))
    else:
        text = {"table": lambda: "\n".join(reports.table_lines(made)) + "\n",
                "csv": lambda: reports.to_csv(made),
                "json": lambda: made.model_dump_json(indent=2) + "\n"}[args.format]()
        if args.out is None:
            sys.stdout.write(text)
        else:
            _write(args.out, text.encode("utf-8"))
    for warning in made.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.out is not None:
        print(f"{reports.FORM} {made.first_day}..{made.last_day} by {made.by} written to {args.out}", file=sys.stderr)
    return 0


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as err:
        raise CliError(f"cannot write --out {path}: {err.strerror or err}") from err
