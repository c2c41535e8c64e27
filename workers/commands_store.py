"""Commands that read (or repair) the projection database: `lienthong inbox`,
`lienthong dossiers sheet` and `lienthong dossiers resync`. Their `--json` documents
are the services' models (services/inbox.py, services/sheet.py), the ones the gateway
answers with: instants in UTC there, in Vietnam time in the printed tables."""

from __future__ import annotations

import argparse
import asyncio
import difflib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from config.settings import Settings
from services.dossiers import DossierClient, Refusal
from services.inbox import read_page
from services.sheet import build_sheet, render_sheet
from services.temporal import connect_or_refuse
from store import identity, projection
from store.models import AgencyRow
from workers.arguments import not_negative, positive
from workers.commands_common import (
    CliError,
    fetch_state,
    print_table,
    refused,
    store_sessions,
    when,
)
from workflows.payloads import DossierState

DOSSIER_WORKFLOWS = 'WorkflowType="DossierWorkflow"'

# ----------------------------------------------------------------------------- inbox


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    agency_inbox = commands.add_parser("inbox", help="an agency's open steps, most urgent first")
    agency_inbox.add_argument("agency", metavar="AGENCY")
    agency_inbox.add_argument("--limit", type=positive, default=50, metavar="N", help="at most N items (default 50)")
    agency_inbox.add_argument("--offset", type=not_negative, default=0, metavar="N", help="skip the first N items")
    agency_inbox.add_argument("--json", action="store_true", help="print the items as JSON, nothing else")
    agency_inbox.set_defaults(run=show_inbox)


def add_dossier_parsers(action: Any) -> None:
    """`dossiers sheet` and `dossiers resync`: read or rewrite the store's copy."""
    sheet = action.add_parser("sheet", help="the process-control sheet (phiếu kiểm soát quá trình)")
    sheet.add_argument("dossier_id", metavar="ID")
    sheet.add_argument("--json", action="store_true", help="print the sheet as JSON, nothing else")
    sheet.set_defaults(run=show_sheet)
    resync_parser = action.add_parser("resync", help="rewrite the projection from the workflows' state where it "
                                                     "is behind; report dossiers whose stored record describes "
                                                     "another workflow run (a reused id)")
    resync_parser.add_argument("dossier_ids", nargs="*", metavar="ID")
    resync_parser.add_argument("--all", action="store_true", help="every DossierWorkflow Temporal knows")
    resync_parser.set_defaults(run=resync)


def show_inbox(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(UTC)
    with store_sessions(settings) as sessions, sessions() as session:
        agency = session.get(AgencyRow, args.agency)
        if agency is None:
            codes = list(session.scalars(select(AgencyRow.code)))
            close = difflib.get_close_matches(args.agency, codes, n=3, cutoff=0.6)
            hint = f"; close codes: {', '.join(close)}" if close else ""
            if not codes:
                hint = " (no agencies are registered: run `lienthong definitions deploy`)"
            raise CliError(f"unknown agency {args.agency}{hint}")
        page = read_page(session, args.agency, args.limit, args.offset, now)
    if args.json:
        print(page.model_dump_json())
        return 0
    items = page.items
    if page.awaiting_receipt:
        waiting = page.awaiting_receipt
        print(f"waiting for {agency.code} to receive or refuse them (submitted online, longest waiting first; "
              "`lienthong dossiers receive|refuse ID --agency " + agency.code + "`):")
        print_table([("DOSSIER", "PROCEDURE", "SUBMITTED"),
                     *((w.dossier_id, w.procedure, when(w.submitted_at)) for w in waiting)])
        print(f"{len(waiting)} waiting for receipt" + (" (the oldest; more with a larger --limit)"
                                                       if len(waiting) == args.limit else ""))
    if not items:
        more = f" past the first {args.offset}" if args.offset else ""
        print(f"inbox of {agency.code} ({agency.name}): no open items{more}")
        return 0
    print(f"inbox of {agency.code} ({agency.name}), most urgent first (Vietnam time):")
    rows = [("DOSSIER", "PROCEDURE", "STEP", "RECEIVED-BY", "ASSIGNED", "DUE")]
    rows += [(i.dossier_id, i.procedure, i.step_id, i.received_by or "-", when(i.assigned_at), when(i.due_at))
             for i in items]
    print_table(rows, markers=["OVERDUE" if i.overdue else "" for i in items])
    first = args.offset + 1
    plural = "s" if len(items) != 1 else ""
    shown = f"items {first}–{args.offset + len(items)}" if args.offset else f"{len(items)} item{plural}"
    overdue = sum(1 for i in items if i.overdue)
    more = f" (more with --offset {page.next_offset})" if page.next_offset is not None else ""
    print(f"{shown}, {overdue} overdue{more}")
    return 0


# ----------------------------------------------------------------------------- sheet


def show_sheet(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions, sessions() as session:
        state = projection.get_dossier(session, args.dossier_id)
    if state is not None:
        sheet = build_sheet(state, "projection")
    else:  # not recorded (yet): ask the workflow itself
        sheet = build_sheet(asyncio.run(fetch_state(settings, args.dossier_id)), "workflow")
    if args.json:
        print(sheet.model_dump_json())
    else:
        print(render_sheet(sheet, when))
    return 0


# ----------------------------------------------------------------------------- resync


def resync(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.dossier_ids) == bool(args.all):
        raise CliError("give dossier IDs or --all (not both)")
    with store_sessions(settings) as sessions:
        counts = asyncio.run(_resync(settings, sessions, args.dossier_ids, args.all))
    total = sum(counts.values())
    print(f"{total} dossier{'s' if total != 1 else ''}: {counts['resynced']} resynced, {counts['current']} up to date"
          + (f", {counts['other']} of another run" if counts["other"] else "")
          + (f", {counts['failed']} failed" if counts["failed"] else ""))
    problems = []
    if counts["other"]:
        n = counts["other"]
        problems.append(f"{n} dossier{'s' if n != 1 else ''} in the store describe{'s' if n == 1 else ''} another "
                        f"workflow run than Temporal's (see above)")
    if counts["failed"]:
        n = counts["failed"]
        problems.append(f"{n} dossier{'s' if n != 1 else ''} could not be read from Temporal (see above)")
    if problems:
        raise CliError("; ".join(problems))
    return 0


async def _resync(settings: Settings, sessions: sessionmaker[Session], ids: list[str],
                  every: bool) -> dict[str, int]:
    client = await connect_or_refuse(settings)
    dossiers = DossierClient(client, sessions, settings.task_queue)
    if every:
        ids = await _all_dossier_ids(client)
    counts = dict.fromkeys(("resynced", "current", "other", "failed"), 0)
    for dossier_id in dict.fromkeys(ids):
        try:
            state, run_id = await dossiers.state_of_run(dossier_id)
        except Refusal as refusal:
            if not every and len(ids) == 1:
                raise refused(refusal) from refusal
            print(f"failed {dossier_id}: {refused(refusal)}")
            counts["failed"] += 1
            continue
        target = state.last_event_seq
        with sessions.begin() as session:
            stored = projection.described(session, dossier_id)
            reserved = identity.get(session, dossier_id)
            other = _another_run(stored, reserved.run_id if reserved else None, state, run_id)
            if other is None:
                behind = stored is None or stored.last_seq < target
                if behind:
                    projection.apply_state(session, state, target, run_id=run_id)
                # The store owns the id from now on (a workflow started by another path).
                identity.reserve(session, dossier_id, request=None, received_by=None)
                identity.record_run(session, dossier_id, run_id)
        if other is not None:
            print(f"another run {dossier_id}: {other}; not rewritten. The id was reused: the store keeps the first "
                  f"dossier and its audit log. Terminate Temporal's run (temporal workflow terminate --workflow-id "
                  f"{dossier_id} --run-id {run_id}) and submit that dossier again under a new id")
            counts["other"] += 1
        elif behind:
            before = "none" if stored is None else stored.last_seq
            print(f"resynced {dossier_id} (seq {before} → {target})")
            counts["resynced"] += 1
        else:
            print(f"up to date {dossier_id} (seq {stored.last_seq if stored else target})")
            counts["current"] += 1
    return counts


def _another_run(stored: projection.Described | None, reserved_run: str | None, state: DossierState,
                 run_id: str) -> str | None:
    """Why the store describes another workflow run than Temporal's `run_id`, or None."""
    theirs = f"Temporal has run {run_id} ({state.procedure_code}@{state.procedure_version}, received " \
             f"{when(state.received_at)}, seq {state.last_event_seq})"
    if stored is not None and stored.run_id is not None and stored.run_id != run_id:
        return f"the projection describes run {stored.run_id} ({stored.procedure}, received " \
               f"{when(stored.received_at)}, seq {stored.last_seq}); {theirs}"
    if reserved_run is not None and reserved_run != run_id:
        return f"the store reserved the id for run {reserved_run}; {theirs}"
    if stored is not None and stored.run_id is None and (
            stored.received_at != state.received_at
            or stored.procedure != f"{state.procedure_code}@{state.procedure_version}"):
        # Written before runs were recorded: what the dossier is tells them apart.
        return f"the projection describes a dossier {stored.procedure} received {when(stored.received_at)} " \
               f"(seq {stored.last_seq}); {theirs}"
    return None


async def _all_dossier_ids(client: Client) -> list[str]:
    ids: list[str] = []
    async for execution in client.list_workflows(DOSSIER_WORKFLOWS):
        ids.append(execution.id)
    return sorted(dict.fromkeys(ids))

