"""`lienthong portal status | parked | retry`: the National Public Service Portal's outbox,
for an operator (README "National Public Service Portal"; alerts LienthongPortalSyncStalled
and LienthongPortalChangesRefused point here)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from config.settings import Settings
from services import portal
from store.portal_outbox import Parked
from workers.commands_common import CliError, print_table, store_sessions, when


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("portal", help="the National Public Service Portal's sync: backlog, refused changes")
    action = group.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    shown = action.add_parser("status", help="where changes go, how many wait, how long the oldest has waited")
    shown.add_argument("--json", action="store_true", help="print the status as JSON, nothing else")
    shown.set_defaults(run=show_status)
    parked = action.add_parser("parked", help="changes the portal refused for good that nothing later superseded")
    parked.add_argument("dossiers", nargs="*", metavar="ID", help="only these dossiers")
    parked.add_argument("--json", action="store_true", help="print them as JSON, nothing else")
    parked.set_defaults(run=list_parked)
    retry = action.add_parser("retry", help="send parked changes again (once the cause is fixed), each dossier's in "
                                            "order")
    retry.add_argument("dossiers", nargs="*", metavar="ID", help="only these dossiers (default: every parked one)")
    retry.set_defaults(run=retry_parked)


def show_status(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions:
        found = portal.status(sessions)
    backlog, failure = found.backlog, found.failure
    if args.json:
        print(json.dumps({
            "portal_url": str(settings.portal_url) if settings.portal_url else None,
            "pending": backlog.pending, "lag_seconds": found.lag_seconds, "parked": backlog.parked,
            "oldest_pending_at": backlog.oldest_pending_at.isoformat() if backlog.oldest_pending_at else None,
            "last_error": None if failure is None else {"dossier_id": failure.dossier_id, "seq": failure.seq,
                                                        "attempts": failure.attempts, "error": failure.last_error},
        }, ensure_ascii=False))
        return 0
    print(f"portal: {settings.portal_url}" if settings.portal_url
          else "portal: off (LIENTHONG_PORTAL_URL is not set: nothing is queued or sent)")
    if backlog.pending:
        print(f"waiting: {backlog.pending} change(s); the oldest recorded {when(backlog.oldest_pending_at)} "
              f"({found.lag_seconds:.0f} s ago)")
    else:
        print("waiting: nothing")
    if failure is not None:
        print(f"last failure: {failure.dossier_id}:{failure.seq} after {failure.attempts} attempt(s): "
              f"{failure.last_error}")
    print(f"parked: {backlog.parked}" + (" (`lienthong portal parked` lists them)" if backlog.parked else ""))
    return 0


def _rows(found: list[Parked]) -> list[list[str]]:
    return [["DOSSIER", "SEQ", "KIND", "STATUS", "PARKED", "ATTEMPTS", "PORTAL SAID"]] + [
        [p.dossier_id, str(p.seq), p.kind, str(p.portal_status), when(p.parked_at), str(p.attempts),
         p.last_error or ""] for p in found]


def list_parked(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions:
        found = portal.parked(sessions, args.dossiers)
    if args.json:
        print(json.dumps([{"dossier_id": p.dossier_id, "seq": p.seq, "kind": p.kind,
                           "portal_status": p.portal_status, "parked_at": p.parked_at.isoformat() if p.parked_at
                           else None, "attempts": p.attempts, "error": p.last_error} for p in found],
                         ensure_ascii=False))
    elif found:
        print_table(_rows(found))
    else:
        print("no parked change" + (f" of {', '.join(args.dossiers)}" if args.dossiers else ""))
    return 0


def retry_parked(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions:
        again = portal.retry_parked(sessions, args.dossiers)
    if not again and args.dossiers:
        raise CliError(f"no parked change of {', '.join(args.dossiers)} to send again (`lienthong portal parked` "
                       "lists them; a change a later delivered one superseded is not sent again)")
    for p in again:
        print(f"{p.dossier_id}:{p.seq} ({p.kind}) will be sent again")
    if not again:
        print("no parked change")
    return 0
