"""Temporal client and worker wiring: one data converter, one list of activities."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.logging_context import DossierLogContext
from activities.recording import RecordingActivities
from activities.routing import RoutingActivities, notify_escalation
from activities.working_time import LOCAL_ACTIVITIES
from workers.settings import Settings
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierState


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


def build_worker(client: Client, task_queue: str, sessions: sessionmaker[Session],
                 http: httpx.Client | None = None) -> Worker:
    """The dossier worker. Activities are plain functions (database, HTTP and
    calendar work), so they run on a thread pool instead of the event loop."""
    recording = RecordingActivities(sessions)
    routing = RoutingActivities(sessions, http=http)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[DossierWorkflow],
        activities=[recording.record_event, recording.record_and_route, routing.route_step, routing.notify_agency,
                    notify_escalation,
                    *LOCAL_ACTIVITIES],
        activity_executor=ThreadPoolExecutor(max_workers=16),
        interceptors=[DossierLogContext()],
    )


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Register the custom search attributes the workflow upserts (idempotent)."""
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.service import RPCError, RPCStatusCode

    from workflows.search_attributes import ALL

    wanted = {key.name: key.indexed_value_type for key in ALL}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        wanted = {name: kind for name, kind in wanted.items() if name not in existing.custom_attributes}
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server cannot list
            raise
    if wanted:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=wanted)
        )


async def wait_for_first_state(handle: WorkflowHandle[Any, DossierState], seconds: float) -> DossierState | None:
    """The dossier's state once a worker has computed its due date, or None after
    `seconds` (a submission is accepted either way; the due comes when a worker runs)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + seconds
    while loop.time() < give_up:
        try:
            state = await handle.query(DossierWorkflow.state, rpc_timeout=timedelta(seconds=5))
            if state.due_at is not None:
                return state
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
            pass  # no worker has taken the first task yet
        await asyncio.sleep(0.1)
    return None
