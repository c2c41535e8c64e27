"""`lienthong agencies issue-token|revoke-token|tokens`: agencies' bearer tokens for the
HTTP gateway (services/tokens.py keeps them)."""

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
from store.models import AgencyRow
from workers.commands_common import CliError, print_table, store_sessions, when


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    agencies = commands.add_parser("agencies", help="agencies' tokens for the HTTP gateway")
    action = agencies.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    issue = action.add_parser("issue-token", help="a new bearer token for an agency (printed once)")
    issue.add_argument("agency", metavar="CODE")
    issue.add_argument("--by", metavar="NAME", help="who issues it (default: $USER)")
    issue.set_defaults(run=issue_token)
    revoke = action.add_parser("revoke-token", help="revoke a token at once (by its id, or the token itself)")
    revoke.add_argument("token", metavar="ID")
    revoke.set_defaults(run=revoke_token)
    listing = action.add_parser("tokens", help="issued tokens (ids only), for one agency or all")
    listing.add_argument("agency", nargs="?", metavar="CODE")
    listing.set_defaults(run=list_tokens)


# ----------------------------------------------------------------------------- tokens


def issue_token(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions, sessions.begin() as session:
        try:
            issued = tokens.issue(session, args.agency, args.by or default_deployer(), datetime.now(UTC))
        except tokens.TokenError as err:
            codes = list(session.scalars(select(AgencyRow.code)))
            close = difflib.get_close_matches(args.agency, codes, n=3, cutoff=0.6)
            hint = f"; close codes: {', '.join(close)}" if close else ""
            if not codes:
                hint = " (no agencies are registered: run `lienthong definitions deploy`)"
            raise CliError(f"{err}{hint}") from err
    # The token alone on stdout (for scripts); what it is on stderr. It is never shown again.
    print(f"token {issued.id} for {issued.agency}; shown once, store it now "
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
    table = [("ID", "AGENCY", "ISSUED", "BY", "REVOKED")]
    table += [(r.id, r.agency, when(r.created_at), r.created_by, when(r.revoked_at) if r.revoked_at else "-")
              for r in rows]
    print_table(table)
    return 0
