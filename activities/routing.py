"""Handing steps to agencies and telling escalation targets about late ones.

For now an agency's "inbox" is a structured log line per routing; the store's
inbox table and signed webhooks plug in behind these same signatures.
"""

from __future__ import annotations

import structlog
from temporalio import activity

from workflows.payloads import Escalation, Routing

log = structlog.get_logger("lienthong.routing")


@activity.defn
async def route_step(routing: Routing) -> None:
    log.info(
        "step_routed" if routing.reason != "withdrawn" else "step_withdrawn",
        procedure=f"{routing.procedure_code}@{routing.procedure_version}",
        sector=routing.sector,
        step_id=routing.step_id,
        agency=routing.agency,
        reason=routing.reason,
        due_at=routing.due_at.isoformat(),
    )


@activity.defn
async def notify_escalation(escalation: Escalation) -> None:
    log.warning(
        "step_escalated",
        sector=escalation.sector,
        step_id=escalation.step_id,
        agency=escalation.agency,
        escalate_to=escalation.escalate_to,
        due_at=escalation.due_at.isoformat(),
        overdue_since=escalation.overdue_since.isoformat(),
    )
