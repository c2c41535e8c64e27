"""No token: the applicants' status lookup, the problem-type catalogue and a health check."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest

from gateway.context import GatewayContext, get_context
from gateway.dossiers import plausible_id
from gateway.problems import TYPES, GatewayProblem
from gateway.responses import problems
from gateway.schemas import Holder, ProblemTypeDoc, PublicStatus
from store import projection
from store.models import AgencyRow
from workflows.payloads import DossierStatus

router = APIRouter()
Context = Annotated[GatewayContext, Depends(get_context)]
HEALTH_TIMEOUT = 3.0


def _public(session: Session, dossier_id: str) -> PublicStatus | None:
    state = projection.get_dossier(session, dossier_id)
    if state is None:
        return None
    # While the applicant supplements, the dossier is in their hands, not an agency's.
    holders = [] if state.status == DossierStatus.AWAITING_SUPPLEMENT else state.current_agencies
    # Names, not codes: a templated code (bpmc-xa-{commune}) would echo the dossier's data.
    names = dict(session.execute(select(AgencyRow.code, AgencyRow.name)
                                 .where(AgencyRow.code.in_(holders))).tuples().all())
    return PublicStatus(
        dossier_id=state.dossier_id, procedure_code=state.procedure_code, procedure_name=state.procedure_name,
        status=state.status, portal_status=state.portal_status, received_at=state.received_at,
        appointment_at=state.due_at, completed_at=state.completed_at,
        held_by=[Holder(name=names.get(code, "—")) for code in holders],
    )


@router.get("/public/dossiers/{dossier_id}", operation_id="publicStatus", response_model=PublicStatus, tags=["public"],
            summary="Where is my dossier?", responses=problems(404))
async def public_status(dossier_id: Annotated[str, Path(description="the code on the receipt",
                                                         examples=["HS-2026-000123"])],
                        context: Context) -> PublicStatus:
    """For applicants, without a token: the procedure, the status, the received and
    appointment dates and which agencies hold the dossier now. Never the dossier's
    data, notes or agency codes. Read from the stored projection, not the engine."""
    found = await context.read(lambda s: _public(s, dossier_id)) if plausible_id(dossier_id) else None
    if found is None:
        raise GatewayProblem("unknown-dossier", f"unknown dossier {dossier_id[:200]}")
    return found


@router.get("/problems", operation_id="listProblemTypes", response_model=list[ProblemTypeDoc], tags=["meta"],
            summary="Every problem type")
async def problem_types() -> list[ProblemTypeDoc]:
    return [ProblemTypeDoc(type=t.uri, status=t.status, title=t.title, description=t.description)
            for t in TYPES.values()]


@router.get("/problems/{slug}", operation_id="readProblemType", response_model=ProblemTypeDoc, tags=["meta"],
            summary="One problem type",
            responses=problems(404, 422))
async def problem_type(slug: str) -> ProblemTypeDoc:
    found = TYPES.get(slug)
    if found is None:
        raise GatewayProblem("unknown-problem-type", f"no problem type {slug[:100]!r}")
    return ProblemTypeDoc(type=found.uri, status=found.status, title=found.title, description=found.description)


@router.get("/healthz", operation_id="health", tags=["meta"],
            summary="Store and engine reachable; whether a worker polls the dossiers' task queue",
            responses=problems(503))
async def health(context: Context) -> dict[str, Any]:
    """``503`` when the store or Temporal cannot be reached: this gateway cannot serve.
    Otherwise ``200`` with ``workers``: ``polling`` when Temporal has seen a worker poll
    the dossiers' task queue (in its last minutes: Temporal forgets a poller a few
    minutes after it stops), else ``none`` and ``status: degraded``: dossiers are
    accepted and read, but do not move until a worker runs. That is not this gateway's
    fault and another instance would not do better, so a load balancer keeps it in
    rotation; the LienthongNoWorkers alert is the page."""
    checks: dict[str, Callable[[], Awaitable[Any]]] = {
        "store": lambda: context.read(lambda s: s.execute(text("SELECT 1")).scalar()),
        "temporal": lambda: context.client.workflow_service.get_system_info(GetSystemInfoRequest()),
    }
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), HEALTH_TIMEOUT)
        except Exception as err:  # anything here means "not healthy"; say which part
            raise GatewayProblem(f"{name}-unavailable", f"{name} not reachable: {type(err).__name__}") from err
    workers = await _workers(context)
    return {"status": "ok" if workers == "polling" else "degraded", "store": "ok", "temporal": "ok",
            "workers": workers}


async def _workers(context: GatewayContext) -> str:
    """``polling``, ``none``, or ``unknown`` (Temporal did not answer the question)."""
    request = DescribeTaskQueueRequest(namespace=context.client.namespace,
                                       task_queue=TaskQueue(name=context.task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    try:
        answer = await asyncio.wait_for(context.client.workflow_service.describe_task_queue(request), HEALTH_TIMEOUT)
    except Exception:  # reachable a moment ago: say what is known, not 503
        return "unknown"
    return "polling" if answer.pollers else "none"
