"""`lienthong agencies issue-token|revoke-token|tokens|retire`: agencies' bearer tokens for
the HTTP gateway (services/tokens.py keeps them), and retiring an agency."""

from __future__ import annotations

import argparse
import difflib
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from config.settings import Settings
from services import tokens
from services.deploy import default_deployer
from store import registry
from store.models import AgencyRow
from workers.commands_common import CliError, print_table, store_sessions, when


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    agencies = commands.add_parser("agencies", help="agencies' tokens for the HTTP gateway")
    action = agencies.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    issue = action.add_parser("issue-token", help="a new bearer token for an agency (printed once)")
    issue.add_argument("agency", metavar="CODE")
    issue.add_argument("--by", metavar="NAME", help="who issues it (default: $USER)")
    issue.add_argument("--role", choices=tokens.ROLES, default=tokens.AGENCY,
                       help="agency: acts for the agency on /v1 (default); monitoring: reads the province's "
                            "reports (/v1/reports) for the unit's monitoring team, and nothing else")
    issue.set_defaults(run=issue_token)
    revoke = action.add_parser("revoke-token", help="revoke a token at once (by its id, or the token itself)")
    revoke.add_argument("token", metavar="ID")
    revoke.set_defaults(run=revoke_token)
    listing = action.add_parser("tokens", help="issued tokens (ids only), for one agency or all")
    listing.add_argument("agency", nargs="?", metavar="CODE")
    listing.set_defaults(run=list_tokens)
    retire = action.add_parser("retire", help="retire an agency: its tokens stop working, no new step is routed "
                                              "to it, and the open steps it holds are listed")
    retire.add_argument("agency", metavar="CODE")
    retire.set_defaults(run=retire_agency)


# ----------------------------------------------------------------------------- tokens


def _unknown(session: Any, code: str, err: Exception) -> CliError:
    codes = list(session.scalars(select(AgencyRow.code)))
    close = difflib.get_close_matches(code, codes, n=3, cutoff=0.6)
    hint = f"; close codes: {', '.join(close)}" if close else ""
    if not codes:
        hint = " (no agencies are registered: run `lienthong definitions deploy`)"
    return CliError(f"{err}{hint}")


def issue_token(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions, sessions.begin() as session:
        try:
            issued = tokens.issue(session, args.agency, args.by or default_deployer(), datetime.now(UTC), args.role)
        except tokens.TokenError as err:
            raise _unknown(session, args.agency, err) from err
    # The token alone on stdout (for scripts); what it is on stderr. It is never shown again.
    role = "" if issued.role == tokens.AGENCY else f" ({issued.role}: reads reports only)"
    print(f"token {issued.id} for {issued.agency}{role}; shown once, store it now "
          f"(revoke with `lienthong agencies revoke-token {issued.id}`):", file=sys.stderr, flush=True)
    print(issued.token, flush=True)
    return 0


def revoke_token(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions, sessions.begin() as session:
        try:
            row = tokens.revoke(session, tokens.token_id_of(args.token), datetime.now(UTC))
        except tokens.TokenError as err:
            raise CliError(str(err)) from err
        print(f"token {row.id} of {row.agency} revoked at {when(row.revoked_at)}")
    return 0


def list_tokens(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions, sessions() as session:
        rows = tokens.list_tokens(session, args.agency)
    if not rows:
        print(f"no tokens{f' for {args.agency}' if args.agency else ''}")
        return 0
    table = [("ID", "AGENCY", "ROLE", "ISSUED", "BY", "REVOKED")]
    table += [(r.id, r.agency, r.role, when(r.created_at), r.created_by,
               when(r.revoked_at) if r.revoked_at else "-") for r in rows]
    print_table(table)
    return 0


# ----------------------------------------------------------------------------- retiring


def retire_agency(args: argparse.Namespace, settings: Settings) -> int:
    """Retire an agency now (a deploy of agencies.yaml without it does the same). It stays
    in the registry (history names it); keep it out of agencies.yaml too, or the next
    deploy brings it back."""
    with store_sessions(settings) as sessions, sessions.begin() as session:
        try:
            retired = registry.retire(session, args.agency, datetime.now(UTC))
        except registry.UnknownAgencyCode as err:
            raise _unknown(session, args.agency, err) from err
        print(retired.line())
        if retired.open_steps:
            print("hand them over (e.g. complete them as the agency with `lienthong dossiers complete`, or "
                  "reject the dossiers) and remove the agency from agencies.yaml", file=sys.stderr)
    return 0
