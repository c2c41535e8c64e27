"""Talking to Temporal as a client: one data converter (pydantic's, with the payload
encryption codec of services/codec.py), the search attributes a dossier starts with,
and changes retried while a dossier catches up."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import TypedSearchAttributes
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from config.settings import Settings
from definitions.calendar import calendar_from_snapshot
from services.codec import converter_for
from services.processes import StartError
from store import inbox
from workflows import search_attributes as sa
from workflows.clock import due as compute_due
from workflows.dossier import NOT_ROUTED_YET, DossierWorkflow
from workflows.payloads import DossierInput, DossierState, DossierStatus


async def connect(settings: Settings, converter: DataConverter | None = None) -> Client:
    """A client whose payloads are encrypted with the configured keys (a missing or
    malformed key is a CodecConfigError, before any connection)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=converter or converter_for(settings),
    )


async def connect_or_refuse(settings: Settings) -> Client:
    """`connect`, with an unreachable server as one line (StartError)."""
    converter = converter_for(settings)  # a key problem is said as itself, not as "cannot reach"
    try:
        return await connect(settings, converter)
    except Exception as err:  # the SDK raises RuntimeError with the transport's story
        raise StartError(f"cannot reach Temporal at {settings.temporal_address}: {transport_reason(err)}") from err


def transport_reason(err: BaseException) -> str:
    # The Rust core nests the OS message deep inside; surface it when it is there.
    found = re.search(r'message: "([^"]+)"', str(err))
    return found.group(1) if found else " ".join(str(err).split()) or type(err).__name__


# How long a change refused because its step is not routed yet is retried while the
# caller's inbox holds the step (see workflows.dossier.NOT_ROUTED_YET): a workflow
# catches up with its next workflow task, which after a worker died during a database
# outage can be a minute away (the chaos test saw 42 s). Callers' own timeouts cut it
# short; they retry with the same idempotency key.
NOT_ROUTED_RETRY_S = 120.0


async def execute_change(handle: WorkflowHandle[Any, Any], update: Any, arg: Any, update_id: str,
                         in_inbox: Callable[[], Awaitable[bool]] | None = None) -> Any:
    """Send a change (an Update whose id is the caller's idempotency key). A refusal
    because the step is not routed yet is retried for NOT_ROUTED_RETRY_S when
    `in_inbox()` says the caller's inbox holds the step: it saw it from a store write
    whose workflow task a dead worker never completed, and the workflow routes it again
    as it catches up. Otherwise the refusal stands at once. A refused Update leaves no
    trace, so the same id can be sent again."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + NOT_ROUTED_RETRY_S
    pause = 0.2
    while True:
        try:
            return await handle.execute_update(update, arg, id=update_id)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            transient = (in_inbox is not None and isinstance(cause, ApplicationError)
                         and cause.type == "NotCurrent" and NOT_ROUTED_YET in cause.details)
            if not transient or loop.time() + pause > give_up or not await in_inbox():  # type: ignore[misc]
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)


def inbox_check(sessions: sessionmaker[Session], dossier_id: str, arg: Any) -> Callable[[], Awaitable[bool]] | None:
    """For a change naming an agency and a step: whether that agency's inbox holds it
    (True when the store cannot be read: the retry is bounded anyway)."""
    agency, step_id = getattr(arg, "agency", None), getattr(arg, "step_id", None)
    if not (agency and step_id):
        return None

    def holds() -> bool:
        with sessions() as session:
            return inbox.holds(session, agency, dossier_id, step_id)

    async def check() -> bool:
        try:
            return await asyncio.to_thread(holds)
        except SQLAlchemyError:  # the store cannot say: retry, within the bound
            return True

    return check


def start_attributes(dossier: DossierInput) -> TypedSearchAttributes:
    """The search attributes a dossier starts with (the workflow upserts only changes)."""
    procedure = dossier.snapshot.procedure
    due_at = None
    # The workflow computes the same due from the same input; a dossier waiting for
    # receipt has none until a desk receives it.
    if dossier.received_at is not None and not dossier.awaits_receipt:
        calendar = calendar_from_snapshot(dossier.calendar)
        start = calendar.start_of_clock(dossier.received_at, procedure.receipt_cutoff)
        due_at = compute_due(calendar, start, procedure.deadline).due_at
    return sa.at_start(procedure.code, procedure.version, procedure.sector, due_at)


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Register the custom search attributes the workflow upserts (idempotent)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.service import RPCError, RPCStatusCode

    from workflows.search_attributes import ALL

    wanted = {key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in ALL}
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
    """The dossier's state once a worker has computed its due date (or, for a dossier
    waiting for a desk to receive it, has recorded it as submitted: no clock runs yet),
    or None after `seconds` (a submission is accepted either way; the due comes when a
    worker runs)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + seconds
    while loop.time() < give_up:
        try:
            state = await handle.query(DossierWorkflow.state, rpc_timeout=timedelta(seconds=5))
            if state.due_at is not None or (state.status == DossierStatus.SUBMITTED and state.last_event_seq > 0):
                return state
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
            pass  # no worker has taken the first task yet
        await asyncio.sleep(0.1)
    return None
