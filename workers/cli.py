"""`lienthong`: the operators' command line.

Every refusal is one line on stderr and a non-zero exit (1 for a refusal, 2 for a
usage error): operators script these commands, and a traceback tells them nothing.
Dossier commands talk to Temporal through the dossier client (services/dossiers.py),
as the gateway does; registry, inbox and sheet commands read the
database named by `LIENTHONG_DATABASE_URL` (default: a SQLite file in `.lienthong/`).

This module is the parser and the dossier commands; the others live in
`workers/commands_registry.py` (db, definitions), `workers/commands_store.py`
(inbox, sheet, resync) and `workers/commands_calendars.py` (calendars apply).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from config.logging import configure_logging
from config.settings import Settings, get_settings
from definitions.limits import MAX_NOTE_CHARS
from definitions.loader import validate_paths
from services.deploy import DeployError
from services.dossiers import DossierUpdate, Refusal
from services.processes import StartError, stop_on_signals
from services.store import StoreNotReadyError
from services.submission import CHANNELS, LOCAL_TZ, StoreRegistry, SubmissionError, local_today, prepare_dossier
from services.temporal import connect_or_refuse
from store.db import DatabaseURLError
from workers import (
    commands_bench,
    commands_calendars,
    commands_monitoring,
    commands_registry,
    commands_store,
    commands_tokens,
)
from workers.commands_common import (
    CliError,
    dossier_client,
    fetch_state,
    one_line,
    refused,
    store_sessions,
    when,
)
from workers.dev import DevOptions, DevServerError, run_dev
from workers.worker import ensure_search_attributes, run_worker
from workflows.dossier import DossierWorkflow
from workflows.payloads import CompleteStep, DossierState, Extend, Outcome, Resubmit, StepState

COMMAND_PLUGINS = "lienthong.commands"  # modules with add_parsers(commands, parser_class)


# ----------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script. Exits without interpreter teardown: the Temporal core's
    Rust threads can abort a finalizing CPython ("PyGILState_Release", exit 134
    after the work is done; temporalio/sdk-python#300)."""
    code = run(argv)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more to say
    os._exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (tests call this in-process)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        return int(args.run(args, settings) or 0)
    except (CliError, DeployError) as err:
        for detail in err.details:
            print(detail, flush=True)
        return _fail(str(err))
    except StartError as err:  # a process that cannot start (port, store, Temporal)
        return _fail(str(err))
    except DatabaseURLError as err:  # a URL no server can fix
        return _fail(f"bad LIENTHONG_DATABASE_URL: {err}")
    except SQLAlchemyError as err:  # a database that is down, refuses us, or lacks a table
        return _fail(f"database error: {one_line(getattr(err, 'orig', None) or err)}")
    except ValidationError as err:  # a bad LIENTHONG_* / TEMPORAL_* variable
        first = err.errors()[0]
        return _fail(f"bad setting {'.'.join(map(str, first['loc']))}: {first['msg']}")
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        return 141
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    except Exception as err:  # a bug, not a user error: one line unless asked for details
        if _debug():
            raise
        return _fail(f"internal error: {type(err).__name__}: {one_line(err)} (set LIENTHONG_DEBUG=1 for a traceback)")


def _debug() -> bool:
    try:
        return get_settings().debug
    except ValidationError:
        return False


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr, flush=True)
    return code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the usage and the message on two lines; one is enough.
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lienthong", description="Route administrative-procedure dossiers between agencies.")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND", parser_class=_Parser)

    db = commands.add_parser("db", help="the projection database's schema")
    db_action = db.add_subparsers(required=True, metavar="ACTION", parser_class=_Parser)
    db_action.add_parser("upgrade", help="migrate LIENTHONG_DATABASE_URL to the newest schema (idempotent)") \
        .set_defaults(run=commands_registry.db_upgrade)
    db_action.add_parser("current", help="the schema revision; exit 1 when behind") \
        .set_defaults(run=commands_registry.db_current)

    _definitions_parsers(commands)

    dev = commands.add_parser("dev", help="local Temporal dev server + worker (what `make run` starts)")
    dev.add_argument("--db-file", type=Path, help="keep dossiers in this SQLite file (default: in memory)")
    dev.add_argument("--port", type=int, default=7233, help="gRPC port (default 7233)")
    dev.add_argument("--ui-port", type=int, help="web UI port (default: --port + 1000)")
    dev.add_argument("--ip", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dev.add_argument("--gateway-port", type=int, help="HTTP gateway port (default 8080, or a free port if "
                     "8080 is taken; 0: any free port)")
    dev.set_defaults(run=_dev)

    commands.add_parser("worker", help="run the dossier worker against TEMPORAL_ADDRESS").set_defaults(run=_worker)
    commands_monitoring.add_parser(commands)

    dossiers = commands.add_parser("dossiers", help="submit, complete, extend, show and resync dossiers")
    action = dossiers.add_subparsers(required=True, metavar="ACTION", parser_class=_Parser)
    _submit_parser(action)
    _change_parsers(action)
    show = action.add_parser("show", help="a dossier's state")
    show.add_argument("dossier_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print the state as JSON, nothing else")
    show.set_defaults(run=_show)
    sheet = action.add_parser("sheet", help="the process-control sheet (phiếu kiểm soát quá trình)")
    sheet.add_argument("dossier_id", metavar="ID")
    sheet.add_argument("--json", action="store_true", help="print the sheet as JSON, nothing else")
    sheet.set_defaults(run=commands_store.show_sheet)
    resync = action.add_parser("resync", help="rewrite the projection from the workflows' state where it is behind")
    resync.add_argument("dossier_ids", nargs="*", metavar="ID")
    resync.add_argument("--all", action="store_true", help="every DossierWorkflow Temporal knows")
    resync.set_defaults(run=commands_store.resync)

    agency_inbox = commands.add_parser("inbox", help="an agency's open steps, most urgent first")
    agency_inbox.add_argument("agency", metavar="AGENCY")
    agency_inbox.add_argument("--limit", type=_positive, default=50, metavar="N", help="at most N items (default 50)")
    agency_inbox.add_argument("--offset", type=_not_negative, default=0, metavar="N", help="skip the first N items")
    agency_inbox.add_argument("--json", action="store_true", help="print the items as JSON, nothing else")
    agency_inbox.set_defaults(run=commands_store.show_inbox)

    calendars = commands.add_parser("calendars", help="working-time calendars")
    calendar_action = calendars.add_subparsers(required=True, metavar="ACTION", parser_class=_Parser)
    apply = calendar_action.add_parser(
        "apply", help="recompute the dues of open dossiers after a calendar file changed")
    apply.add_argument("--calendar", action="append", dest="calendars", metavar="NAME",
                       help="a calendar (repeatable; default: every calendar file)")
    apply.add_argument("--reason", type=_note, default="calendar file changed", metavar="TEXT",
                       help="goes into each dossier's audit log")
    apply.set_defaults(run=commands_calendars.apply)
    commands_tokens.add_parsers(commands, _Parser)
    for plugin in entry_points(group=COMMAND_PLUGINS):  # the gateway's commands (gateway/commands.py)
        plugin.load().add_parsers(commands, _Parser)
    commands_bench.add_parser(commands, _Parser)
    return parser


def _definitions_parsers(commands: Any) -> None:
    definitions = commands.add_parser("definitions", help="check, deploy and list procedure definitions")
    which = definitions.add_subparsers(required=True, metavar="ACTION", parser_class=_Parser)
    validate = which.add_parser("validate", help="check procedure files, folders and registries")
    validate.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                          help="files or folders (default: LIENTHONG_DEFINITIONS)")
    validate.set_defaults(run=_validate)
    deploy = which.add_parser("deploy", help="validate, then store code@version immutably (all or nothing)")
    deploy.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="files or a definitions folder (default: LIENTHONG_DEFINITIONS)")
    deploy.add_argument("--by", metavar="NAME", help="who deploys (default: $USER)")
    deploy.set_defaults(run=commands_registry.deploy)
    listing = which.add_parser("list", help="the deployed definitions (--files: the definitions folder)")
    listing.add_argument("--files", action="store_true", help="list the procedure files instead")
    listing.set_defaults(run=commands_registry.list_deployed)
    show = which.add_parser("show", help="a deployed definition: metadata and its YAML")
    show.add_argument("ref", metavar="CODE[@VERSION]", help="newest deployed version without @VERSION")
    show.set_defaults(run=commands_registry.show)
    diff = which.add_parser("diff", help="unified diff of two deployed versions")
    diff.add_argument("code", metavar="CODE")
    diff.add_argument("v1", type=_positive, metavar="V1")
    diff.add_argument("v2", type=_positive, metavar="V2")
    diff.set_defaults(run=commands_registry.diff)


def _positive(text: str) -> int:
    value = _not_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _note(text: str) -> str:
    """A --note or --reason: free text that goes into the dossier's history, bounded."""
    if len(text) > MAX_NOTE_CHARS:
        raise argparse.ArgumentTypeError(f"{len(text)} characters; at most {MAX_NOTE_CHARS} (MAX_NOTE_CHARS)")
    return text


def _not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _submit_parser(action: Any) -> None:
    submit = action.add_parser("submit", help="start a dossier")
    submit.add_argument("--procedure", required=True, metavar="CODE[@VERSION]|PATH",
                        help="a deployed procedure (newest version in effect today), or a draft file")
    submit.add_argument("--id", required=True, dest="dossier_id", metavar="ID", help="the dossier code")
    submit.add_argument("--data", required=True, metavar="JSON", help='e.g. \'{"commune": "xa-tan-lap"}\'')
    submit.add_argument("--channel", choices=CHANNELS, default="in_person")
    submit.add_argument("--received-at", metavar="ISO", help="with a UTC offset; default: now")
    submit.add_argument("--received-by", metavar="AGENCY", help="the one-stop desk that received it")
    submit.set_defaults(run=_submit)


def _change_parsers(action: Any) -> None:
    request_id = {"metavar": "KEY", "help": "idempotency key: a retried call with the same key applies once"}
    complete = action.add_parser("complete", help="an agency reports its step done")
    complete.add_argument("dossier_id", metavar="ID")
    complete.add_argument("step_id", metavar="STEP")
    complete.add_argument("--agency", required=True, metavar="CODE")
    complete.add_argument("--outcome", choices=[o.value for o in Outcome], default=Outcome.APPROVED.value)
    complete.add_argument("--note", type=_note, metavar="TEXT")
    complete.add_argument("--request-id", **request_id)
    complete.set_defaults(run=_complete)

    resubmit = action.add_parser("resubmit", help="the applicant has supplemented the documents")
    resubmit.add_argument("dossier_id", metavar="ID")
    resubmit.add_argument("--note", type=_note, metavar="TEXT")
    resubmit.add_argument("--request-id", **request_id)
    resubmit.set_defaults(run=_resubmit)

    extend = action.add_parser("extend", help="a new appointment, with an apology")
    extend.add_argument("dossier_id", metavar="ID")
    extend.add_argument("--agency", required=True, metavar="CODE")
    extend.add_argument("--until", required=True, metavar="ISO", help="new due; without an offset: Vietnam time")
    extend.add_argument("--reason", type=_note, required=True, metavar="TEXT")
    extend.add_argument("--step", dest="step_id", metavar="STEP")
    extend.add_argument("--request-id", **request_id)
    extend.set_defaults(run=_extend)


# ----------------------------------------------------------------------------- definitions


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    paths = args.paths or [settings.definitions]
    checked, problems = validate_paths(paths)
    for problem in problems:
        print(problem)
    if problems:
        raise CliError(f"{len(problems)} problem(s) in {checked} file(s)")
    if checked == 0:
        raise CliError(f"nothing to validate: no definition files in {', '.join(map(str, paths))}")
    print(f"{checked} file{'s' if checked != 1 else ''} valid")
    return 0


# ----------------------------------------------------------------------------- processes


def _quiet_migrations() -> None:
    # Alembic logs "Context impl SQLiteImpl." each time the schema is checked; the
    # revision is said once by `dev` itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    """Migrates the database and deploys the definitions folder first (run_dev)."""
    configure_logging(settings.log_level, settings.log_json)
    _quiet_migrations()
    ui_port = args.ui_port if args.ui_port is not None else args.port + 1000
    options = DevOptions(ip=args.ip, port=args.port, ui_port=ui_port, db_file=args.db_file,
                         gateway_port=args.gateway_port)

    async def run() -> None:
        await run_dev(settings, options, stop_on_signals())

    try:
        asyncio.run(run())
    except DevServerError as err:
        raise CliError(str(err)) from err
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_json)
    _quiet_migrations()

    async def run() -> None:
        stop = stop_on_signals()
        commands_monitoring.start_worker_metrics(settings)  # before the client: SDK metrics runtime
        client = await connect_or_refuse(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        await run_worker(client, settings.task_queue, stop, settings.database_url,
                       sandboxed=settings.workflow_sandbox)

    try:
        asyncio.run(run())
    except StoreNotReadyError as err:
        raise CliError(str(err)) from err
    return 0


# ----------------------------------------------------------------------------- dossiers


def _submit(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with store_sessions(settings) as sessions, sessions() as session:
            dossier = prepare_dossier(args.procedure, args.dossier_id, args.data,
                                      StoreRegistry(session, settings.definitions), local_today(),
                                      args.channel, args.received_at, args.received_by)
    except SubmissionError as err:
        raise CliError(str(err)) from err

    async def run() -> DossierState | None:
        async with dossier_client(settings) as dossiers:
            try:
                return await dossiers.start(dossier)
            except Refusal as refusal:
                raise refused(refusal) from refusal

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
    step = state.step(args.step_id)
    print(f"dossier {state.dossier_id}: step {args.step_id} {step.status.value if step else args.outcome}"
          f"{f' ({step.verdict})' if step and step.verdict else ''}; dossier {state.status.value}")
    return 0


def _resubmit(args: argparse.Namespace, settings: Settings) -> int:
    state = asyncio.run(_change(settings, args.dossier_id, DossierWorkflow.resubmit, Resubmit(note=args.note),
                                   args.request_id))
    print(f"dossier {state.dossier_id}: resubmitted; dossier {state.status.value}, due {when(state.due_at)}")
    return 0


def _extend(args: argparse.Namespace, settings: Settings) -> int:
    try:
        until = datetime.fromisoformat(args.until)
    except ValueError as err:
        raise CliError(f"--until {args.until!r} is not an ISO date-time (e.g. 2026-03-02T17:00)") from err
    if until.tzinfo is None:
        until = until.replace(tzinfo=LOCAL_TZ)  # operators write Vietnam time
    request = Extend(agency=args.agency, new_due=until, reason=args.reason, step_id=args.step_id)
    state = asyncio.run(_change(settings, args.dossier_id, DossierWorkflow.extend, request, args.request_id))
    print(f"dossier {state.dossier_id}: extended until {when(until)}; dossier due {when(state.due_at)}")
    return 0


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
        print(state.model_dump_json())
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


if __name__ == "__main__":
    main()
