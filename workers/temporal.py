"""Temporal client and worker wiring: one data converter, one list of activities."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

import httpx
from sqlalchemy.orm import Session, sessionmaker

from activities.logging_context import DossierLogContext
from activities.recording import RecordingActivities
from activities.routing import RoutingActivities, notify_escalation
from activities.working_time import LOCAL_ACTIVITIES
from workers.settings import Settings
from workflows.dossier import DossierWorkflow


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
        activities=[recording.record_event, routing.route_step, routing.notify_agency, notify_escalation,
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
