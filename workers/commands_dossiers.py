"""`lienthong dossiers submit|complete|resubmit|extend|show|sheet|timeline|resync|orphans`: dossiers
through the dossier client (services/dossiers.py), as the gateway does."""

from __future__ import annotations

import argparse
import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from definitions.calendar import CalendarFileError, UnknownCalendarError, load_calendar
from services.dossiers import DossierUpdate, Refusal
from services.instants import in_utc
from services.submission import CHANNELS, LOCAL_TZ, StoreRegistry, SubmissionError, local_today, prepare_dossier
from workers import commands_orphans, commands_store, commands_timeline
from workers.arguments import note
from workers.commands_common import CliError, dossier_client, fetch_state, one_line, refused, store_sessions, when
from workflows.dossier import DossierWorkflow
from workflows.payloads import CompleteStep, DossierState, Extend, Outcome, Resubmit, StepState

RELATIVE_UNTIL = re.compile(r"\+([1-9][0-9]?)d")  # `extend --until +2d`: working days from now

def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    dossiers = commands.add_parser("dossiers", help="submit, complete, extend, show and resync dossiers")
    action = dossiers.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    _submit_parser(action)
    _change_parsers(action)
    show = action.add_parser("show", help="a dossier's state")
    show.add_argument("dossier_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print the state as JSON (instants in UTC), nothing else")
    show.set_defaults(run=_show)
    commands_store.add_dossier_parsers(action)
    commands_timeline.add_dossier_parsers(action)
    commands_orphans.add_dossier_parsers(action)


def _submit_parser(action: Any) -> None:
    submit = action.add_parser("submit", help="start a dossier")
    submit.add_argument("--procedure", required=True, metavar="CODE[@VERSION]|PATH",
                        help="a deployed procedure (newest version in effect today), or a draft file")
    submit.add_argument("--id", required=True, dest="dossier_id", metavar="ID", help="the dossier code")
    submit.add_argument("--data", required=True, metavar="JSON", help='e.g. \'{"commune": "xa-tan-lap"}\'')
    submit.add_argument("--channel", choices=CHANNELS, default="in_person")
    submit.add_argument("--received-at", metavar="ISO", help="with a UTC offset; default: now")
    submit.add_argument("--received-by", metavar="AGENCY", help="the one-stop desk that received it")
    submit.add_argument("--request-id", metavar="KEY", help="idempotency key: a retried submission with the same "
                        "key starts the dossier once (any other is refused: an id is never reused)")
    submit.set_defaults(run=_submit)


def _change_parsers(action: Any) -> None:
    request_id = {"metavar": "KEY", "help": "idempotency key: a retried call with the same key applies once"}
    complete = action.add_parser("complete", help="an agency reports its step done")
    complete.add_argument("dossier_id", metavar="ID")
    complete.add_argument("step_id", metavar="STEP")
    complete.add_argument("--agency", required=True, metavar="CODE")
    complete.add_argument("--outcome", choices=[o.value for o in Outcome], default=Outcome.APPROVED.value)
    complete.add_argument("--note", type=note, metavar="TEXT")
    complete.add_argument("--request-id", **request_id)
    complete.set_defaults(run=_complete)

    resubmit = action.add_parser("resubmit", help="the applicant has supplemented the documents")
    resubmit.add_argument("dossier_id", metavar="ID")
    resubmit.add_argument("--agency", required=True, metavar="CODE",
                          help="the agency relaying the supplement (the desk that received it, or an agency "
                               "with a step on the dossier); recorded as who resubmitted")
    resubmit.add_argument("--note", type=note, metavar="TEXT")
    resubmit.add_argument("--request-id", **request_id)
    resubmit.set_defaults(run=_resubmit)

    extend = action.add_parser("extend", help="a new appointment, with an apology")
    extend.add_argument("dossier_id", metavar="ID")
    extend.add_argument("--agency", required=True, metavar="CODE")
    extend.add_argument("--until", required=True, metavar="ISO|+Nd",
                        help="new due: a date-time (without an offset: Vietnam time), or +N working days from now")
    extend.add_argument("--reason", type=note, required=True, metavar="TEXT")
    extend.add_argument("--step", dest="step_id", metavar="STEP")
    extend.add_argument("--request-id", **request_id)
    extend.set_defaults(run=_extend)


# ----------------------------------------------------------------------------- commands


def _submit(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with store_sessions(settings) as sessions, sessions() as session:
            dossier = prepare_dossier(args.procedure, args.dossier_id, args.data,
                                      StoreRegistry(session, settings.definitions), local_today(),
                                      args.channel, args.received_at, args.received_by)
    except SubmissionError as err:
        raise CliError(str(err)) from err

    request_id = args.request_id or str(uuid.uuid4())

    async def run() -> DossierState | None:
        async with dossier_client(settings) as dossiers:
            try:
                return await dossiers.start(dossier, request=request_id)
            except Refusal as refusal:
                raise refused(refusal, request_id=request_id) from refusal

    state = asyncio.run(run())
    print(f"dossier {dossier.dossier_id} submitted: {dossier.snapshot.ref} {dossier.snapshot.procedure.name}")
    if state is None or state.due_at is None:
        print("due:      not computed yet: no worker has picked it up (is `lienthong worker` running?)")
    else:
        print(f"received: {when(state.received_at)}")
        print(f"due:      {when(state.due_at)}")
    return 0


def _complete(args: argparse.Namespace, settings: Settings) -> int:
    request = CompleteStep(step_id=args.step_id, agency=args.agency, outcome=args.outcome, note=args.note)
    state = asyncio.run(_change(settings, args.dossier_id, DossierWorkflow.complete_step, request, args.request_id))
    if args.outcome == Outcome.SUPPLEMENT.value:
        print(f"dossier {state.dossier_id}: supplement requested at step {args.step_id}; dossier "
              f"{state.status.value}: every clock stops until the applicant resubmits"
              + (f" (by {when(state.supplement_due_at)})" if state.supplement_due_at else ""))
        return 0
    step = state.step(args.step_id)
    print(f"dossier {state.dossier_id}: step {args.step_id} {step.status.value if step else args.outcome}"
          f"{f' ({step.verdict})' if step and step.verdict else ''}; dossier {state.status.value}")
    return 0


def _resubmit(args: argparse.Namespace, settings: Settings) -> int:
    state = asyncio.run(_change(settings, args.dossier_id, DossierWorkflow.resubmit,
                                   Resubmit(agency=args.agency, note=args.note),
                                   args.request_id))
    print(f"dossier {state.dossier_id}: resubmitted; dossier {state.status.value}, due {when(state.due_at)}")
    return 0


def _extend(args: argparse.Namespace, settings: Settings) -> int:
    until = _until(args.until, args.dossier_id, settings)
    request = Extend(agency=args.agency, new_due=until, reason=args.reason, step_id=args.step_id)
    state = asyncio.run(_change(settings, args.dossier_id, DossierWorkflow.extend, request, args.request_id))
    print(f"dossier {state.dossier_id}: extended until {when(until)}; dossier due {when(state.due_at)}")
    return 0


def _until(value: str, dossier_id: str, settings: Settings) -> datetime:
    """`--until`: an ISO date-time (Vietnam time without an offset), or `+Nd`: N working
    days from now on the dossier's calendar."""
    relative = RELATIVE_UNTIL.fullmatch(value.strip())
    if relative is None:
        try:
            until = datetime.fromisoformat(value)
        except ValueError as err:
            raise CliError(f"--until {value!r} is not an ISO date-time (e.g. 2026-03-02T17:00) "
                           "or +N working days (e.g. +2d)") from err
        return until if until.tzinfo is not None else until.replace(tzinfo=LOCAL_TZ)  # operators write Vietnam time
    state = asyncio.run(fetch_state(settings, dossier_id))
    try:
        calendar = load_calendar(state.calendar, settings.definitions)
    except (UnknownCalendarError, CalendarFileError) as err:
        raise CliError(f"--until {value}: calendar {state.calendar!r} of dossier {dossier_id} cannot be read: "
                       f"{one_line(err)}") from err
    return calendar.add(datetime.now(UTC), f"{relative.group(1)}d")


async def _change(settings: Settings, dossier_id: str, update: DossierUpdate, arg: Any,
                  request_id: str | None) -> DossierState:
    """Send an Update (idempotency key: --request-id, else a new one) and answer with the
    dossier's whole state; every refusal is one line."""
    request_id = request_id or str(uuid.uuid4())
    async with dossier_client(settings) as dossiers:
        try:
            return await dossiers.change(dossier_id, update, arg, request_id)
        except Refusal as refusal:
            raise refused(refusal, request_id=request_id) from refusal


def _show(args: argparse.Namespace, settings: Settings) -> int:
    state = asyncio.run(fetch_state(settings, args.dossier_id))
    if args.json:
        print(in_utc(state).model_dump_json())  # every instant in UTC, as the gateway answers
    else:
        print(render_state(state))
    return 0


# ----------------------------------------------------------------------------- human view


def render_state(state: DossierState) -> str:
    lines = [
        f"dossier {state.dossier_id}: {state.procedure_code}@{state.procedure_version} {state.procedure_name}",
        f"  sector {state.sector}, level {state.level}, calendar {state.calendar}, channel {state.channel}",
        f"status:       {state.status.value} (portal status {state.portal_status})",
        f"received:     {when(state.received_at)}",
        f"due:          {when(state.due_at)}"
        + (f" (original {when(state.original_due_at)})" if state.original_due_at != state.due_at else ""),
        f"overdue:      {'yes' if state.overdue else 'no'}",
        f"verdict:      {state.verdict or '-'}",
    ]
    if state.completed_at:
        result = f": {state.result_note}" if state.result_note else ""
        lines.append(f"finished:     {when(state.completed_at)}{result}")
    if state.paused_at:
        lines.append(f"paused:       {when(state.paused_at)} (awaiting supplement"
                     + (f", until {when(state.supplement_due_at)})" if state.supplement_due_at else ")"))
    lines.append("steps:")
    lines += _step_table(state.steps)
    if state.notes:
        lines.append("notes:")
        for note in state.notes:
            who = " ".join(part for part in (note.agency, f"step {note.step_id}" if note.step_id else None) if part)
            lines.append(f"  {when(note.at)}  {note.kind}{f' ({who})' if who else ''}: {note.text}")
    return "\n".join(lines)


def _step_table(steps: list[StepState]) -> list[str]:
    rows = [("STEP", "AGENCY", "STATUS", "ASSIGNED", "DUE", "COMPLETED", "VERDICT")]
    for step in steps:
        rows.append((step.id, step.agency or "-", step.status.value, when(step.assigned_at), when(step.due_at),
                     when(step.completed_at), step.verdict or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    states: list[StepState | None] = [None, *steps]
    for row, st in zip(rows, states):
        line = "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths))
        if st is not None and st.overdue:
            line += "  OVERDUE"
        lines.append(line.rstrip())
        if st is not None and st.note:
            lines.append(f"      note: {st.note}")
    return lines
