"""Dossiers as the gateway sees them: Temporal for changes and fresh state, the
projection when Temporal no longer (or not yet) knows a dossier.

Every failure becomes a `GatewayProblem`: the workflow's refusals keep their kind,
an unknown or closed dossier is told apart with `describe`, and an engine that is
down or has no worker is a 503/504 the caller may retry with the same key.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from gateway.context import GatewayContext
from gateway.problems import GatewayProblem, refusal
from store import projection
from workers.temporal import execute_change, inbox_check, start_attributes, wait_for_first_state
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierInput, DossierState

UPDATE_TIMEOUT = 30.0  # seconds for a worker to accept or refuse a change
QUERY_TIMEOUT = timedelta(seconds=10)
FIRST_STATE_WAIT = 10.0  # seconds a submission waits for the worker to compute the due
# Memo keys on the workflow: who received it (may read it), and which request started it.
MEMO_RECEIVED_BY = "lienthong.received_by"
MEMO_REQUEST = "lienthong.gateway_request"
MAX_ID_LENGTH = 200  # DossierInput.dossier_id

Handle = WorkflowHandle[Any, DossierState]
Source = Literal["workflow", "projection"]


@dataclass(frozen=True)
class Found:
    state: DossierState
    source: Source
    received_by: str | None = None

    def involves(self, agency: str) -> bool:
        """Agencies that have or had a step on it, were escalated to, or received it."""
        if self.received_by == agency:
            return True
        return any(st.agency == agency or (st.escalate_to == agency and st.escalations > 0)
                   for st in self.state.steps)


def plausible_id(dossier_id: str) -> bool:
    """Ids no dossier can have (control characters, too long) are unknown without asking:
    the databases refuse NUL bytes, and Temporal refuses long ids with another error."""
    return 0 < len(dossier_id) <= MAX_ID_LENGTH and not any(
        unicodedata.category(ch) in ("Cc", "Cs") for ch in dossier_id)


def implausible(what: str, value: str) -> str:
    """Why an id no dossier or step can have is unknown, naming it (shortened, escaped)."""
    shown = repr(value[:40]) + ("…" if len(value) > 40 else "")
    return (f"no {what} has the id {shown}: ids are 1 to {MAX_ID_LENGTH} characters without control characters "
            f"(this one has {len(value)})")


def _handle(context: GatewayContext, dossier_id: str) -> Handle:
    return context.client.get_workflow_handle_for(DossierWorkflow.run, dossier_id)  # type: ignore[arg-type]


def unavailable(err: BaseException) -> GatewayProblem:
    return GatewayProblem("temporal-unavailable", f"the workflow engine did not answer: {type(err).__name__}",
                          headers={"Retry-After": "5"})


# ----------------------------------------------------------------------------- reading


async def load(context: GatewayContext, dossier_id: str) -> Found:
    """The workflow's own state; the projection when Temporal has forgotten the dossier
    (retention), cannot be reached, or no worker answers a query."""
    if not plausible_id(dossier_id):
        raise GatewayProblem("unknown-dossier", implausible("dossier", dossier_id))
    try:
        return await _from_workflow(context, dossier_id)
    except _NotFromWorkflow as why:
        stored = await context.read(lambda s: projection.get_dossier(s, dossier_id))
        if stored is not None:
            return Found(stored, "projection")
        if why.problem is not None:
            raise why.problem from None
        raise GatewayProblem("unknown-dossier", f"unknown dossier {dossier_id}") from None


class _NotFromWorkflow(Exception):
    def __init__(self, problem: GatewayProblem | None = None) -> None:
        super().__init__()
        self.problem = problem  # None: Temporal does not know it


async def _from_workflow(context: GatewayContext, dossier_id: str) -> Found:
    handle = _handle(context, dossier_id)
    try:
        description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
        received_by = await description.memo_value(MEMO_RECEIVED_BY, None)
        if description.status not in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
            raise _NotFromWorkflow(GatewayProblem("unknown-dossier", f"dossier {dossier_id} did not finish "
                                                  f"normally ({description.status.name.lower()})"))
        state = await handle.query(DossierWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise _NotFromWorkflow() from err
        if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise _NotFromWorkflow(GatewayProblem("no-worker", "no worker answered for this dossier")) from err
        raise _NotFromWorkflow(unavailable(err)) from err
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise _NotFromWorkflow(unavailable(err)) from err
    return Found(state, "workflow", received_by if isinstance(received_by, str) else None)


# ----------------------------------------------------------------------------- changing


async def change(context: GatewayContext, dossier_id: str, update: Callable[..., Awaitable[Any]],
                 arg: Any, update_id: str) -> DossierState:
    """Send an Update; its id is the caller's idempotency key, so it applies once."""
    if not plausible_id(dossier_id):
        raise GatewayProblem("unknown-dossier", implausible("dossier", dossier_id))
    handle = _handle(context, dossier_id)
    try:
        await asyncio.wait_for(execute_change(handle, update, arg, update_id,
                                             inbox_check(context.sessions, dossier_id, arg)), UPDATE_TIMEOUT)
        # The Update answers briefly; the state query has the whole dossier to answer with.
        return await handle.query(DossierWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise unavailable(err) from err
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            raise refusal(cause.type or "Refused", cause.message) from err
        raise GatewayProblem("refused", str(cause or err)) from err
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise await _why_not_found(handle) from err
        raise unavailable(err) from err
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
        raise GatewayProblem("no-worker", f"no worker answered within {UPDATE_TIMEOUT:.0f}s; retry with the "
                             "same Idempotency-Key: the change applies at most once") from err


async def _why_not_found(handle: Handle) -> GatewayProblem:
    # An Update on a closed workflow is NOT_FOUND too: tell the two apart.
    try:
        description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError:
        return GatewayProblem("unknown-dossier", f"unknown dossier {handle.id}")
    if description.status != WorkflowExecutionStatus.RUNNING:
        return refusal("DossierFinished", f"dossier {handle.id} is finished; it takes no more changes")
    return GatewayProblem("unknown-dossier", f"unknown dossier {handle.id}")


# ----------------------------------------------------------------------------- submitting


async def start(context: GatewayContext, dossier: DossierInput, request: str) -> DossierState | None:
    """Start the dossier's workflow and wait (bounded) for its first due; None if no
    worker computed it in time. A start already made by the same request is reused,
    so a retry after a lost answer does not become "dossier exists"."""
    memo = {MEMO_RECEIVED_BY: dossier.received_by, MEMO_REQUEST: request}
    try:
        handle: Handle = await context.client.start_workflow(
            DossierWorkflow.run, dossier, id=dossier.dossier_id, task_queue=context.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, memo=memo,
            search_attributes=start_attributes(dossier),
        )
    except WorkflowAlreadyStartedError as err:
        handle = _handle(context, dossier.dossier_id)
        if await _started_by(handle) != request:
            raise GatewayProblem("dossier-exists", f"dossier {dossier.dossier_id} already exists") from err
    except RPCError as err:
        raise unavailable(err) from err
    return await wait_for_first_state(handle, FIRST_STATE_WAIT)


async def _started_by(handle: Handle) -> str | None:
    try:
        value = await (await handle.describe(rpc_timeout=QUERY_TIMEOUT)).memo_value(MEMO_REQUEST, None)
    except RPCError as err:
        raise unavailable(err) from err
    return value if isinstance(value, str) else None


