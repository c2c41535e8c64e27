"""Running the dossier worker until the process is asked to stop (SIGINT/SIGTERM)."""

from __future__ import annotations

import asyncio
import signal

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from store.db import database_url as resolve_database_url
from store.db import make_engine, make_session_factory
from store.migrate import current, head
from workers.temporal import build_worker, register_search_attributes

log = structlog.get_logger("lienthong.worker")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STORE_RETRY_MAX = 30.0  # seconds between two checks of a database that does not answer


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so shutdown runs in order instead of a
    KeyboardInterrupt unwinding the stack wherever it happens to be."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return stop


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Best effort: a production namespace may not let workers register attributes,
    and an operator can register them once by hand; the worker runs either way."""
    try:
        await register_search_attributes(client, namespace)
    except RPCError as err:
        log.warning("search_attributes_not_registered", namespace=namespace, error=str(err))


class StoreNotReadyError(RuntimeError):
    pass


def open_store(url: str | None = None) -> sessionmaker[Session]:
    """Sessions on the projection database, refusing one whose schema is behind:
    writes would fail on every activity, retried forever."""
    resolved = resolve_database_url(url)
    at, wanted = current(resolved), head()
    if at != wanted:
        raise StoreNotReadyError(f"database {make_url(resolved).render_as_string(hide_password=True)} is at "
                                 f"revision {at or 'none'}, not {wanted}: run `lienthong db upgrade`")
    return make_session_factory(make_engine(resolved))


async def wait_for_store(url: str | None, stop: asyncio.Event) -> sessionmaker[Session] | None:
    """`open_store`, waiting for a database that does not answer (down, restarting,
    refusing connections) instead of failing: a worker started during a database outage
    would otherwise exit and crash-loop under its supervisor. A schema that is behind is
    still refused at once. None when `stop` is set while waiting."""
    delay = 1.0
    while True:
        try:
            return await asyncio.to_thread(open_store, url)
        except OperationalError as err:
            log.warning("database_unavailable", error=" ".join(str(err.orig or err).split())[:300],
                        retry_in_s=delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return None
        except TimeoutError:
            delay = min(delay * 2, STORE_RETRY_MAX)


async def run_worker(client: Client, task_queue: str, stop: asyncio.Event, database_url: str | None = None,
                     *, sandboxed: bool = False) -> None:
    """Poll `task_queue` until `stop` is set (or the worker fails), then shut down
    gracefully: in-flight activity results are reported before returning. A database
    that does not answer yet is waited for (`wait_for_store`)."""
    sessions = await wait_for_store(database_url, stop)
    if sessions is None:
        return
    worker = build_worker(client, task_queue, sessions, sandboxed=sandboxed)
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    log.info("worker_started", task_queue=task_queue, namespace=client.namespace, sandboxed=sandboxed)
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not running.done():
            await worker.shutdown()
        await running  # re-raises a fatal worker error
        log.info("worker_stopped", task_queue=task_queue)
