"""`lienthong gateway` (the agencies' HTTP API), the gateway beside `lienthong dev`'s
worker, and `lienthong agencies issue-token|revoke-token|tokens` (their bearer tokens).

FastAPI and uvicorn are imported only by the functions that serve: every other
`lienthong` command starts without paying for them.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import socket
import sys
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from temporalio.client import Client

from gateway import tokens
from store.db import database_url
from store.models import AgencyRow
from workers.commands_common import (
    CliError,
    connect_or_refuse,
    print_table,
    store_sessions,
    when,
)
from workers.commands_registry import default_deployer
from config.logging import configure_logging
from config.settings import Settings
from workers.worker import StoreNotReadyError, stop_on_signals, wait_for_store

DEV_GATEWAY_PORT = 8080


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    gateway = commands.add_parser("gateway", help="the HTTP API for agencies' systems (OpenAPI at /docs)")
    gateway.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    gateway.set_defaults(run=run_gateway)

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


# ----------------------------------------------------------------------------- gateway


def run_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import create_app
    from gateway.context import GatewayContext, open_sessions
    from gateway.server import GatewayBindError, bind, serve, url_of

    configure_logging(settings.log_level, settings.log_json)

    async def run() -> None:
        stop = stop_on_signals()
        try:  # refuses a schema that is behind; waits for a database that does not answer yet
            store = await wait_for_store(settings.database_url, stop)
        except StoreNotReadyError as err:
            raise CliError(str(err)) from err
        if store is None:
            return
        store.kw["bind"].dispose()
        client = await connect_or_refuse(settings)
        try:
            sock = bind(args.host, args.port)
        except GatewayBindError as err:
            raise CliError(f"{err}; choose another with --port") from err
        context = GatewayContext(client, open_sessions(database_url(settings.database_url)), settings.task_queue,
                                 settings.definitions)
        try:
            print(f"gateway listening on {url_of(sock)} (OpenAPI {url_of(sock)}/openapi.json, docs /docs); "
                  "Ctrl-C stops it", flush=True)
            await serve(create_app(context), sock, stop)
        finally:
            context.close()

    asyncio.run(run())
    return 0


def dev_gateway_socket(ip: str, port: int | None) -> socket.socket:
    """`lienthong dev`'s gateway socket: the given port, else 8080, else any free port
    (a second stack on one machine still starts; the port it got is printed)."""
    from gateway.server import GatewayBindError, bind
    from workers.dev import DevServerError  # imported here: dev imports this module

    try:
        return bind(ip, DEV_GATEWAY_PORT if port is None else port)
    except GatewayBindError as err:
        if port is not None:
            raise DevServerError(f"gateway: {err}; choose another with --gateway-port") from err
    return bind(ip, 0)


async def serve_beside(worker: Awaitable[None], sock: socket.socket, client: Client, settings: Settings,
                       stop: asyncio.Event) -> None:
    """Run the gateway while `worker` runs: both stop on `stop`; if either fails, the
    other is stopped and the failure is raised."""
    from gateway.app import create_app
    from gateway.context import GatewayContext, open_sessions
    from gateway.server import serve, url_of

    context = GatewayContext(client, open_sessions(database_url(settings.database_url)), settings.task_queue,
                             settings.definitions)
    url = url_of(sock)
    print(f"gateway:          {url} (OpenAPI {url}/openapi.json, docs {url}/docs)", flush=True)
    serving = asyncio.create_task(serve(create_app(context), sock, stop))
    running = asyncio.ensure_future(worker)
    try:
        await asyncio.wait({serving, running}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # whichever ended first, the other follows
        for outcome in await asyncio.gather(running, serving, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
    finally:
        for task in (serving, running):
            if not task.done():
                task.cancel()
        context.close()
