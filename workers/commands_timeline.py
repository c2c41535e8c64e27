"""`lienthong dossiers timeline ID --format svg [--out FILE]`: a dossier's hand-overs on
a working-time axis, as a picture (services/timeline.py; the gateway serves the same
one at GET /v1/dossiers/{id}/timeline)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import Settings
from definitions.calendar import CalendarFileError, UnknownCalendarError, load_calendar
from services.dossiers import Found, Refusal
from services.timeline import render_timeline
from workers.commands_common import CliError, dossier_client, one_line, refused

FORMATS = ("svg",)


def add_dossier_parsers(action: Any) -> None:
    timeline = action.add_parser("timeline", help="a dossier's steps on a working-time axis, as a picture (SVG)")
    timeline.add_argument("dossier_id", metavar="ID")
    timeline.add_argument("--format", choices=FORMATS, default="svg", help="svg (the default)")
    timeline.add_argument("--out", type=Path, metavar="FILE", help="write the picture here (default: stdout)")
    timeline.set_defaults(run=show_timeline)


def show_timeline(args: argparse.Namespace, settings: Settings) -> int:
    found = asyncio.run(_load(settings, args.dossier_id))
    state = found.state
    try:
        calendar = load_calendar(state.calendar, settings.definitions)
    except (UnknownCalendarError, CalendarFileError) as err:
        raise CliError(f"calendar {state.calendar!r} of dossier {state.dossier_id} cannot be read: "
                       f"{one_line(err)}") from err
    svg = render_timeline(state, calendar, datetime.now(UTC))
    if args.out is None:
        sys.stdout.write(svg)
        return 0
    try:
        args.out.write_text(svg, encoding="utf-8")
    except OSError as err:
        raise CliError(f"--out {args.out}: cannot write the picture: {err.strerror or one_line(err)}") from err
    print(f"timeline of dossier {state.dossier_id} ({found.source}) written to {args.out}")
    return 0


async def _load(settings: Settings, dossier_id: str) -> Found:
    """The workflow's state; the projection's once Temporal has forgotten the dossier."""
    async with dossier_client(settings) as dossiers:
        try:
            return await dossiers.load(dossier_id)
        except Refusal as refusal:
            raise refused(refusal) from refusal
