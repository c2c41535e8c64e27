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
from activities.portal import PortalActivities, PortalConfig
from activities.recording import RecordingActivities
from activities.routing import RoutingActivities
from services.portal import ensure_portal_sync
from services.store import wait_for_store
from services.temporal import register_search_attributes
from workflows.dossier import DossierWorkflow
from workflows.portal_sync import PORTAL_SYNC_ID, PortalSyncWorkflow

log = structlog.get_logger("lienthong.worker")


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Best effort: a production namespace may not let workers register attributes,
    and an operator can register them once by hand; the worker runs either way."""
    try:
        await register_search_attributes(client, namespace)
    except RPCError as err:
        log.warning("search_attributes_not_registered", namespace=namespace, error=str(err))


def build_worker(client: Client, task_queue: str, sessions: sessionmaker[Session],
                 http: httpx.Client | None = None, *, sandboxed: bool = True, portal: PortalConfig | None = None,
                 portal_http: httpx.Client | None = None) -> Worker:
    """The dossier worker. Activities are plain functions (database and HTTP work),
    so they run on a thread pool instead of the event loop.

    `portal` (the National Portal's sync is on): store writes queue the portal's
    changes, and this worker's rounds of PortalSyncWorkflow send them. The workflow and
    its activity are registered either way, so a sync started by another worker never
    finds a worker that does not know it.

    `sandboxed=False` runs workflow code without Temporal's sandbox (the production
    default, `LIENTHONG_WORKFLOW_SANDBOX`; docs/performance.md has the figures): the
    workflow module is reviewed for determinism and the sandboxed runner still runs
    it in every test and replay, where a non-deterministic call would be caught."""
    delivery = PortalActivities(sessions, portal, http=portal_http)
    recording = RecordingActivities(sessions, portal=delivery.adapter)
    routing = RoutingActivities(sessions, http=http)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[DossierWorkflow, PortalSyncWorkflow],
        activities=[recording.write_changes, routing.notify_agency, delivery.deliver_portal_changes],
        activity_executor=ThreadPoolExecutor(max_workers=16),
        interceptors=[DossierLogContext()],
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
    )


async def run_worker(client: Client, task_queue: str, stop: asyncio.Event, database_url: str | None = None,
                     *, sandboxed: bool = False, portal: PortalConfig | None = None) -> None:
    """Poll `task_queue` until `stop` is set (or the worker fails), then shut down
    gracefully: in-flight activity results are reported before returning. A database
    that does not answer yet is waited for (`wait_for_store`). With `portal`, the
    National Portal's sync workflow is started unless it runs already."""
    sessions = await wait_for_store(database_url, stop)
    if sessions is None:
        return
    worker = build_worker(client, task_queue, sessions, sandboxed=sandboxed, portal=portal)
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    log.info("worker_started", task_queue=task_queue, namespace=client.namespace, sandboxed=sandboxed,
             portal_url=portal.url if portal else None)
    if portal is not None:
        await _start_portal_sync(client, task_queue)
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not running.done():
            await worker.shutdown()
        await running  # re-raises a fatal worker error
        log.info("worker_stopped", task_queue=task_queue)


async def _start_portal_sync(client: Client, task_queue: str) -> None:
    """Best effort, like the search attributes: a worker that cannot start it still
    runs dossiers (their changes wait in the outbox; LienthongPortalSyncStalled says so)."""
    try:
        run_id = await ensure_portal_sync(client, task_queue)
    except RPCError as err:
        log.error("portal_sync_not_started", workflow_id=PORTAL_SYNC_ID, error=str(err))
        return
    log.info("portal_sync_running", workflow_id=PORTAL_SYNC_ID, run_id=run_id)
