"""`lienthong dev` (a local Temporal dev server, the worker, the gateway and the
metrics: what `make run` starts) and `lienthong worker`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from activities.portal import PortalConfig
from config.logging import configure_logging
from config.settings import Settings
from services.processes import stop_on_signals
from services.store import StoreNotReadyError
from services.temporal import connect_or_refuse
from workers import commands_monitoring
from workers.commands_common import CliError
from workers.dev import DevOptions, DevServerError, dev_server_file, run_dev
from workers.worker import ensure_search_attributes, run_worker


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    dev = commands.add_parser("dev", help="local Temporal dev server + worker (what `make run` starts)")
    kept = dev.add_mutually_exclusive_group()
    kept.add_argument("--db-file", type=Path, help="keep the dev server's state (its dossiers) in this SQLite file "
                      "(default: beside the projection when that is a SQLite file: .lienthong/lienthong.temporal.db "
                      "for the default one; in memory for PostgreSQL)")
    kept.add_argument("--in-memory", action="store_true", help="keep the dev server's state in memory only (refused "
                      "over a projection with open dossiers)")
    dev.add_argument("--port", type=int, default=7233, help="gRPC port (default 7233)")
    dev.add_argument("--ui-port", type=int, help="web UI port (default: --port + 1000)")
    dev.add_argument("--ip", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dev.add_argument("--gateway-port", type=int, help="HTTP gateway port (default 8080, or a free port if "
                     "8080 is taken; 0: any free port)")
    dev.set_defaults(run=_dev)
    commands.add_parser("worker", help="run the dossier worker against TEMPORAL_ADDRESS").set_defaults(run=_worker)


def _quiet_migrations() -> None:
    # Alembic logs "Context impl SQLiteImpl." each time the schema is checked; the
    # revision is said once by `dev` itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    """Migrates the database and deploys the definitions folder first (run_dev)."""
    configure_logging(settings.log_level, settings.log_json)
    _quiet_migrations()
    ui_port = args.ui_port if args.ui_port is not None else args.port + 1000
    db_file = None if args.in_memory else args.db_file or dev_server_file(settings)
    options = DevOptions(ip=args.ip, port=args.port, ui_port=ui_port, db_file=db_file,
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
                         sandboxed=settings.workflow_sandbox, portal=PortalConfig.from_settings(settings))

    try:
        asyncio.run(run())
    except StoreNotReadyError as err:
        raise CliError(str(err)) from err
    return 0
