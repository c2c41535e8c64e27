"""Recording every dossier transition: the audit log and the projection.

Each event carries the workflow's full state after the transition and a
per-dossier sequence number: the write is idempotent on (dossier_id, seq) and the
projection only moves forward, whatever the retries or their order.
"""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities import metrics
from activities.routing import apply_routing, log_routing
from store import deliveries, projection
from workflows.payloads import DossierEvent, RecordAndRoute, Routed

log = structlog.get_logger("lienthong.events")


class RecordingActivities:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @activity.defn(name="record_event")
    def record_event(self, event: DossierEvent) -> None:
        with self._sessions.begin() as session:
            new = projection.record_event(session, event)
        self._recorded(event, new)

    @activity.defn(name="record_and_route")
    def record_and_route(self, request: RecordAndRoute) -> Routed:
        """A hand-over in one transaction: the event (audit log + projection) and the
        agency's inbox item; says whether the agency has a webhook to notify."""
        event, routing = request.event, request.routing
        with self._sessions.begin() as session:
            new = projection.record_event(session, event)
            changed = apply_routing(session, routing)
            webhook = deliveries.webhook_url(session, routing.agency) is not None
        self._recorded(event, new)
        log_routing(routing, changed)
        return Routed(webhook=webhook)

    def _recorded(self, event: DossierEvent, new: bool) -> None:
        if new:  # committed for the first time: counted once, whatever the retries
            metrics.observe(event)
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
            duplicate=not new,
        )
