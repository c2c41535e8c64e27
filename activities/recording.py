"""Recording every dossier transition (audit log).

Each event carries the workflow's full state after the transition and a
per-dossier sequence number, so a writer can be idempotent (dossier_id, seq)
and a projection can converge on the latest state whatever the retries.
"""

from __future__ import annotations

import structlog
from temporalio import activity

from workflows.payloads import DossierEvent

log = structlog.get_logger("lienthong.events")


@activity.defn
async def record_event(event: DossierEvent) -> None:
    state = event.state
    log.info(
        "dossier_event",
        seq=event.seq,
        kind=event.kind,
        at=event.at.isoformat(),
        actor=event.actor,
        step_id=event.step_id,
        note=event.note,
        procedure=f"{state.procedure_code}@{state.procedure_version}",
        sector=state.sector,
        status=state.status.value,
        overdue=state.overdue,
        current_agencies=state.current_agencies,
    )
