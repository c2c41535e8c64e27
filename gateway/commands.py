"""The gateway's `lienthong` commands and how it runs beside `lienthong dev`'s worker.

The CLI finds this module through the `lienthong.commands` entry point
(pyproject.toml), so neither front end imports the other. FastAPI and uvicorn load
only when the gateway serves: other `lienthong` commands start without them.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Awaitable
from typing import Any

from temporalio.client import Client

from config.logging import configure_logging
from config.settings import Settings
from services.processes import StartError, stop_on_signals
from services.store import StoreNotReadyError, wait_for_store
from services.temporal import connect_or_refuse

DEV_PORT = 8080


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    gateway = commands.add_parser("gateway", help="the HTTP API for agencies' systems (OpenAPI at /docs)")
    gateway.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    gateway.set_defaults(run=run_gateway)


def run_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import create_app
    from gateway.context import GatewayContext
    from gateway.server import GatewayBindError, bind, serve, url_of

    configure_logging(settings.log_level, settings.log_json)

    async def run() -> None:
        stop = stop_on_signals()
        try:  # refuses a schema that is behind; waits for a database that does not answer yet
            store = await wait_for_store(settings.database_url, stop)
        except StoreNotReadyError as err:
            raise StartError(str(err)) from err
        if store is None:
            return
        store.kw["bind"].dispose()
        client = await connect_or_refuse(settings)
        try:
            sock = bind(args.host, args.port)
        except GatewayBindError as err:
            raise StartError(f"{err}; choose another with --port") from err
        context = GatewayContext.from_settings(client, settings)
        try:
            print(f"gateway listening on {url_of(sock)} (OpenAPI {url_of(sock)}/openapi.json, docs /docs); "
                  "Ctrl-C stops it", flush=True)
            await serve(create_app(context), sock, stop)
        finally:
            context.close()

    asyncio.run(run())
    return 0


def dev_socket(ip: str, port: int | None) -> socket.socket:
    """`lienthong dev`'s gateway socket: the given port, else 8080, else any free port
    (a second stack on one machine still starts; the port it got is printed)."""
    from gateway.server import GatewayBindError, bind

    try:
        return bind(ip, DEV_PORT if port is None else port)
    except GatewayBindError as err:
        if port is not None:
            raise StartError(f"gateway: {err}; choose another with --gateway-port") from err
    return bind(ip, 0)


async def serve_beside(worker: Awaitable[None], sock: socket.socket, client: Client, settings: Settings,
                       stop: asyncio.Event) -> None:
    """Run the gateway while `worker` runs: both stop on `stop`; if either fails, the
    other is stopped and the failure is raised."""
    from gateway.app import create_app
    from gateway.context import GatewayContext
    from gateway.server import serve, url_of

    context = GatewayContext.from_settings(client, settings)
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
