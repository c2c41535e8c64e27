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
from store import projection
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
                                                     "is behind")
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
    if not items:
        more = f" past the first {args.offset}" if args.offset else ""
        print(f"inbox of {agency.code} ({agency.name}): no open items{more}")
        return 0
    print(f"inbox of {agency.code} ({agency.name}), most urgent first (Vietnam time):")
    rows = [("DOSSIER", "PROCEDURE", "STEP", "ASSIGNED", "DUE")]
    rows += [(i.dossier_id, i.procedure, i.step_id, when(i.assigned_at), when(i.due_at)) for i in items]
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
    resynced, current, failed = counts
    total = resynced + current + failed
    print(f"{total} dossier{'s' if total != 1 else ''}: {resynced} resynced, {current} up to date"
          + (f", {failed} failed" if failed else ""))
    if failed:
        raise CliError(f"{failed} dossier{'s' if failed != 1 else ''} could not be read from Temporal (see above)")
    return 0


async def _resync(settings: Settings, sessions: sessionmaker[Session], ids: list[str],
                  every: bool) -> tuple[int, int, int]:
    client = await connect_or_refuse(settings)
    dossiers = DossierClient(client, sessions, settings.task_queue)
    if every:
        ids = await _all_dossier_ids(client)
    resynced = current = failed = 0
    for dossier_id in dict.fromkeys(ids):
        try:
            state = await dossiers.state(dossier_id)
        except Refusal as refusal:
            if not every and len(ids) == 1:
                raise refused(refusal) from refusal
            print(f"failed {dossier_id}: {refused(refusal)}")
            failed += 1
            continue
        target = state.last_event_seq
        with sessions.begin() as session:
            before = projection.last_seq(session, dossier_id)
            behind = before is None or before < target
            if behind:
                projection.apply_state(session, state, target)
        if behind:
            print(f"resynced {dossier_id} (seq {'none' if before is None else before} → {target})")
            resynced += 1
        else:
            print(f"up to date {dossier_id} (seq {before})")
            current += 1
    return resynced, current, failed


async def _all_dossier_ids(client: Client) -> list[str]:
    ids: list[str] = []
    async for execution in client.list_workflows(DOSSIER_WORKFLOWS):
        ids.append(execution.id)
    return sorted(dict.fromkeys(ids))

