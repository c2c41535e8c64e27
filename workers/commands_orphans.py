"""`lienthong dossiers orphans`: stuck dossiers, for an operator to act on (issue 13 §5).

Lists, by asking Temporal about what the projection holds:

* **orphans**: dossiers the projection has open whose workflow Temporal reports
  terminated, timed out, failed, cancelled, or does not know (retention, a dev server
  restarted in memory, another namespace). They never move again, yet the open and
  overdue gauges would count them for ever. ``--mark`` marks them ``abandoned`` in the
  store (store/orphans.py): they leave the gauges, their held steps leave the inboxes,
  and ``lienthong_dossiers_abandoned`` counts them (alert LienthongDossiersAbandoned).
  It is safe to schedule (cron): a dossier is marked only after Temporal's own
  description of it says so, and only if the store has not seen it move since;
* **without a due**: open dossiers the store has without a due (written more than 5
  minutes ago), and running dossier workflows the store has never seen (started
  more than 5 minutes ago): their workflow could not compute the due (see
  LienthongWorkflowTaskFailing). Listed, never marked: their workflows still run;
* dossiers Temporal says **completed** that the projection has open: the store is
  behind (`lienthong dossiers resync ID`). Listed, never marked.

``--abandoned`` lists the dossiers already marked, from the store alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from config.settings import Settings
from monitoring.collector import NO_DUE_AFTER
from services.temporal import connect_or_refuse
from store import orphans
from store.orphans import StoredDossier
from workers.commands_common import CliError, one_line, print_table, store_sessions, when

DOSSIER_WORKFLOWS = 'WorkflowType="DossierWorkflow"'
RUNNING = f'{DOSSIER_WORKFLOWS} AND ExecutionStatus="Running"'
ENDED = {  # Temporal's status of a run that will never move again, as listed
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
}
UNKNOWN = "unknown"
DESCRIBES_AT_ONCE = 16


def add_dossier_parsers(action: Any) -> None:
    found = action.add_parser("orphans", help="open dossiers Temporal no longer runs, and dossiers without a due; "
                                               "--mark takes the former out of the open counts")
    found.add_argument("--mark", action="store_true",
                       help="mark the orphans abandoned in the store (they leave the open/overdue gauges and the "
                            "inboxes)")
    found.add_argument("--abandoned", action="store_true", help="list the dossiers already marked abandoned")
    found.add_argument("--json", action="store_true", help="print the findings as JSON, nothing else")
    found.set_defaults(run=run_orphans)


@dataclass(frozen=True)
class Finding:
    dossier_id: str
    kind: str  # orphan | without_due | behind | abandoned
    temporal: str  # what Temporal says of the workflow (running, terminated, unknown...), "-" if not asked
    stored: StoredDossier | None  # None: the store has never seen the dossier
    marked: bool = False

    def as_json(self) -> dict[str, Any]:
        s = self.stored
        return {"dossier_id": self.dossier_id, "kind": self.kind, "temporal": self.temporal, "marked": self.marked,
                "sector": s.sector if s else None, "procedure": s.procedure if s else None,
                "store_status": s.status if s else None,
                "received_at": s.received_at.isoformat() if s else None,
                "due_at": s.due_at.isoformat() if s and s.due_at else None}


def run_orphans(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions:
        if args.abandoned:
            with sessions() as session:
                findings = [Finding(d.id, "abandoned", "-", d) for d in orphans.abandoned(session)]
        else:
            findings = asyncio.run(_find(settings, sessions, mark=args.mark))
    if args.json:
        print(json.dumps([f.as_json() for f in findings], ensure_ascii=False, indent=2))
        return 0
    _show(findings, args)
    return 0


async def _find(settings: Settings, sessions: sessionmaker[Session], *, mark: bool) -> list[Finding]:
    client = await connect_or_refuse(settings)
    now = datetime.now(UTC)
    with sessions() as session:
        open_ids = orphans.open_ids(session)
        no_due = orphans.without_due(session, now, NO_DUE_AFTER)
    running = await _running(client, now)
    if running is None:  # a server that cannot list (the time-skipping test server): ask about each
        candidates, unseen = open_ids, set()
    else:
        candidates = open_ids - set(running)
        old_enough = {i for i, started in running.items() if started is None or now - started > NO_DUE_AFTER}
        with sessions() as session:
            unseen = old_enough - orphans.known_ids(session, old_enough)
    said = await _describe_all(client, sorted(candidates | no_due))
    with sessions() as session:
        stored = {d.id: d for d in orphans.details(session, candidates | no_due)}
    findings: list[Finding] = []
    for dossier_id in sorted(candidates | no_due):
        status, dossier = said[dossier_id], stored.get(dossier_id)
        if dossier is None or dossier.status not in orphans.OPEN:
            continue  # finished or removed since it was read
        if status in (*ENDED.values(), UNKNOWN):
            findings.append(Finding(dossier_id, "orphan", status, dossier))
        elif status == "completed":
            findings.append(Finding(dossier_id, "behind", status, dossier))
        elif dossier_id in no_due:
            findings.append(Finding(dossier_id, "without_due", status, dossier))
    findings += [Finding(dossier_id, "without_due", "running", None) for dossier_id in sorted(unseen)]
    if mark:
        chosen = [f.stored for f in findings if f.kind == "orphan" and f.stored is not None]
        with sessions.begin() as session:
            marked = set(orphans.mark_abandoned(session, chosen, now))
        findings = [Finding(f.dossier_id, f.kind, f.temporal, f.stored, f.dossier_id in marked) for f in findings]
    return findings


async def _running(client: Client, now: datetime) -> dict[str, datetime | None] | None:
    """Running dossier workflows and when each started; None if the server cannot list."""
    running: dict[str, datetime | None] = {}
    try:
        async for execution in client.list_workflows(RUNNING):
            running[execution.id] = execution.start_time
    except RPCError as err:
        if err.status == RPCStatusCode.UNIMPLEMENTED:
            return None
        raise CliError(f"Temporal refused to list the dossiers: {one_line(err.message)}") from err
    return running


async def _describe_all(client: Client, ids: list[str]) -> dict[str, str]:
    """What Temporal says of each workflow: its status's name, or "unknown". Any other
    error stops the command before anything is marked."""
    gate = asyncio.Semaphore(DESCRIBES_AT_ONCE)

    async def describe(dossier_id: str) -> str:
        async with gate:
            try:
                description = await client.get_workflow_handle(dossier_id).describe()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return UNKNOWN
                raise CliError(f"Temporal refused to describe {dossier_id}: {one_line(err.message)}") from err
        status = description.status
        if status in ENDED:
            return ENDED[status]
        return status.name.lower() if status else UNKNOWN

    return dict(zip(ids, await asyncio.gather(*(describe(i) for i in ids))))


WHAT = {
    "orphan": "workflow ended without finishing: not moving",
    "without_due": "no due computed (workflow task failing?)",
    "behind": "finished in Temporal; store behind: `lienthong dossiers resync ID`",
    "abandoned": "marked abandoned",
}


def _show(findings: list[Finding], args: argparse.Namespace) -> None:
    if not findings:
        print("no abandoned dossier" if args.abandoned else "no orphan, no dossier without a due")
        return
    rows = [("ID", "SECTOR", "PROCEDURE", "STORE", "TEMPORAL", "RECEIVED", "WHAT")]
    for f in findings:
        s = f.stored
        what = WHAT[f.kind] + ("; marked abandoned" if f.marked else "")
        rows.append((f.dossier_id, s.sector if s else "-", s.procedure if s else "-",
                     s.status if s else "(not in store)", f.temporal, when(s.received_at) if s else "-", what))
    print_table(rows)
    orphaned = [f for f in findings if f.kind == "orphan"]
    if args.abandoned:
        print(f"{len(findings)} abandoned")
    elif args.mark:
        print(f"{sum(f.marked for f in orphaned)} of {len(orphaned)} orphan(s) marked abandoned")
    elif orphaned:
        print(f"{len(orphaned)} orphan(s); `lienthong dossiers orphans --mark` takes them out of the open counts")
