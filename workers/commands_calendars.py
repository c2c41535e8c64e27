"""`lienthong calendars apply`: after an operator edits `definitions/calendars/*.yaml`
(a newly announced day off, a substituted working Saturday), recompute the dues of
every open dossier on that calendar — through the workflow (`apply_calendar`
Update, which records a `calendar_applied` event in the audit log when a due
moves), never behind its back.

The dues are computed by the WORKERS from the calendar files THEY read, so the
workers must see the edited file (same definitions folder, or redeployed) before
this runs. This command only validates the files it sees, finds the open dossiers
in the projection and sends each the Update.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from config.settings import Settings
from definitions.calendar import (
    CONTINUOUS,
    CalendarFileError,
    UnknownCalendarError,
    WorkingCalendar,
    available_calendars,
    load_calendar,
)
from services.dossiers import DossierClient, Refusal
from store import projection
from workers.arguments import note
from workers.commands_common import CliError, dossier_client, store_sessions, when
from workflows.dossier import DossierWorkflow
from workflows.payloads import FINISHED_STATUSES as FINISHED
from workflows.payloads import ApplyCalendar, DossierState
from workflows.refusals import RefusalKind

Outcome = Literal["moved", "unchanged", "skipped", "failed"]


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    calendars = commands.add_parser("calendars", help="working-time calendars")
    calendar_action = calendars.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    apply_parser = calendar_action.add_parser(
        "apply", help="recompute the dues of open dossiers after a calendar file changed")
    apply_parser.add_argument("--calendar", action="append", dest="calendars", metavar="NAME",
                              help="a calendar (repeatable; default: every calendar file)")
    apply_parser.add_argument("--reason", type=note, default="calendar file changed", metavar="TEXT",
                              help="goes into each dossier's audit log")
    apply_parser.set_defaults(run=apply)


@dataclass(frozen=True)
class Applied:
    dossier_id: str
    outcome: Outcome
    detail: str = ""

    def line(self) -> str:
        return f"{self.outcome} {self.dossier_id}" + (f": {self.detail}" if self.detail else "")


def check_calendars(names: list[str], settings: Settings) -> None:
    """Every named calendar loads, or `CliError` with each file's `PATH:LINE:` problems."""
    problems: list[str] = []
    for name in names:
        try:
            load_calendar(name, settings.definitions)
        except UnknownCalendarError as err:
            raise CliError(str(err)) from err
        except CalendarFileError as err:
            problems += str(err).splitlines()
    if problems:
        raise CliError(f"{len(problems)} problem(s) in the calendar files; nothing applied", details=problems)


def apply(args: argparse.Namespace, settings: Settings) -> int:
    names = list(dict.fromkeys(args.calendars or [n for n in available_calendars(settings.definitions)
                                                  if n != CONTINUOUS]))
    check_calendars(names, settings)
    with store_sessions(settings) as sessions, sessions() as session:
        targets = [(name, dossier_id) for name in names for dossier_id in projection.open_dossier_ids(session, name)]
    results = asyncio.run(_apply_all(settings, targets, args.reason)) if targets else []
    for result in results:
        print(result.line())
    count = {kind: sum(1 for r in results if r.outcome == kind) for kind in ("moved", "skipped", "failed")}
    summary = f"{len(results)} dossier{'s' if len(results) != 1 else ''} checked, {count['moved']} moved"
    if count["skipped"]:
        summary += f", {count['skipped']} skipped (finished meanwhile)"
    if count["failed"]:
        summary += f", {count['failed']} failed"
    print(f"{summary} (calendar{'s' if len(names) != 1 else ''} {', '.join(names) or '-'})")
    if count["failed"]:
        raise CliError(f"{count['failed']} dossier(s) could not be updated (see above); run the command again")
    return 0


async def _apply_all(settings: Settings, targets: list[tuple[str, str]], reason: str) -> list[Applied]:
    calendars = {name: load_calendar(name, settings.definitions) for name in {name for name, _ in targets}}
    async with dossier_client(settings) as dossiers:
        return [await apply_one(dossiers, calendars[name], dossier_id, reason) for name, dossier_id in targets]


async def apply_one(dossiers: DossierClient, calendar: WorkingCalendar, dossier_id: str, reason: str) -> Applied:
    try:
        before = await dossiers.state(dossier_id)
        if before.status in FINISHED:
            return Applied(dossier_id, "skipped", "finished")
        # The calendar as it is now, over the horizon of the dossier's receipt.
        change = ApplyCalendar(calendar=calendar.name, snapshot=calendar.snapshot(before.received_at), reason=reason)
        after = await dossiers.change(dossier_id, DossierWorkflow.apply_calendar, change,
                                      f"apply-calendar-{calendar.name}-{uuid.uuid4()}")
    except Refusal as refusal:
        if refusal.kind is RefusalKind.DOSSIER_FINISHED:
            return Applied(dossier_id, "skipped", "finished")
        if refusal.kind is RefusalKind.UNKNOWN_DOSSIER:
            return Applied(dossier_id, "failed",
                           "unknown to Temporal (the projection has it: run `lienthong dossiers resync`)")
        if refusal.kind in (RefusalKind.NO_WORKER, RefusalKind.ENGINE_UNAVAILABLE):
            return Applied(dossier_id, "failed", refusal.message)
        return Applied(dossier_id, "failed", f"refused: {refusal.message}")
    moved = moved_dues(before, after)
    return Applied(dossier_id, "moved", "; ".join(moved)) if moved else Applied(dossier_id, "unchanged")


def moved_dues(before: DossierState, after: DossierState) -> list[str]:
    """What moved, in Vietnam time: the dossier's due and legal due, then each step's."""
    moved: list[str] = []

    def compare(label: str, old: datetime | None, new: datetime | None) -> None:
        if old != new:
            moved.append(f"{label} {when(old)} → {when(new)}")

    compare("due", before.due_at, after.due_at)
    if before.original_due_at != before.due_at or after.original_due_at != after.due_at:
        compare("legal due", before.original_due_at, after.original_due_at)
    old_steps = {st.id: st for st in before.steps}
    for st in after.steps:
        old = old_steps.get(st.id)
        if old is not None:
            compare(f"step {st.id} due", old.due_at, st.due_at)
    return moved
