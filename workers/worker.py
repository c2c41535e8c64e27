"""Running the dossier worker until the process is asked to stop (SIGINT/SIGTERM)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import structlog
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.logging_context import DossierLogContext
from activities.recording import RecordingActivities
from activities.routing import RoutingActivities
from services.store import wait_for_store
from services.temporal import register_search_attributes
from workflows.dossier import DossierWorkflow

log = structlog.get_logger("lienthong.worker")


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Best effort: a production namespace may not let workers register attributes,
    and an operator can register them once by hand; the worker runs either way."""
    try:
        await register_search_attributes(client, namespace)
    except RPCError as err:
        log.warning("search_attributes_not_registered", namespace=namespace, error=str(err))


def build_worker(client: Client, task_queue: str, sessions: sessionmaker[Session],
                 http: httpx.Client | None = None, *, sandboxed: bool = True) -> Worker:
    """The dossier worker. Activities are plain functions (database and HTTP work),
    so they run on a thread pool instead of the event loop.

    `sandboxed=False` runs workflow code without Temporal's sandbox (the production
    default, `LIENTHONG_WORKFLOW_SANDBOX`; docs/performance.md has the figures): the
    workflow module is reviewed for determinism and the sandboxed runner still runs
    it in every test and replay, where a non-deterministic call would be caught."""
    recording = RecordingActivities(sessions)
    routing = RoutingActivities(sessions, http=http)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[DossierWorkflow],
        activities=[recording.write_changes, routing.notify_agency],
        activity_executor=ThreadPoolExecutor(max_workers=16),
        interceptors=[DossierLogContext()],
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
    )


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
