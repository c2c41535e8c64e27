"""Telling agencies' systems: signed webhooks (inbox items are written with the events)."""

from __future__ import annotations

import httpx
import structlog
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import webhooks
from config.settings import Settings, get_settings
from store import deliveries
from workflows.payloads import AgencyNotification, Routing

log = structlog.get_logger("lienthong.routing")


class RoutingActivities:
    def __init__(self, sessions: sessionmaker[Session], http: httpx.Client | None = None,
                 settings: Settings | None = None) -> None:
        self._sessions = sessions
        self._http = http or httpx.Client(timeout=httpx.Timeout(10.0))
        self._settings = settings  # None: read at each delivery (a rotated secret is seen at once)

    @activity.defn(name="notify_agency")
    def notify_agency(self, notification: AgencyNotification) -> str:
        """POST the notification to the agency's webhook, if it has one.

        Returns "no_webhook", "delivered" or "refused" (a 4xx other than 408/429:
        recorded, not retried). Anything retryable raises, and Temporal retries."""
        agency = notification.agency
        with self._sessions.begin() as session:
            url = deliveries.webhook_url(session, agency)
        if not url:
            return "no_webhook"
        attempt = activity.info().attempt
        try:
            secret = webhooks.secret_for(agency, self._settings or get_settings())
        except webhooks.MissingSecretError as err:
            self._record(notification, url, "failed", None, attempt, str(err))
            raise ApplicationError(str(err), type="MissingSecret", non_retryable=True) from err
        n = notification
        delivery_id = f"{n.dossier_id}/{n.step_id}/{n.kind}/{n.at.isoformat()}"
        payload = notification.model_dump(mode="json")
        try:
            result = webhooks.deliver(self._http, url, payload, secret, delivery_id)
        except webhooks.RetryableDeliveryError as err:
            self._record(notification, url, "failed", err.status_code, attempt, str(err))
            raise ApplicationError(str(err), type="RetryableDelivery") from err
        self._record(notification, url, result.outcome, result.status_code, attempt, result.detail or None)
        log.info("webhook_" + result.outcome, agency=agency, kind=notification.kind, step_id=notification.step_id,
                 status_code=result.status_code)
        return result.outcome

    def _record(self, n: AgencyNotification, url: str, outcome: str, status: int | None, attempt: int,
                error: str | None) -> None:
        with self._sessions.begin() as session:
            deliveries.record_delivery(session, agency=n.agency, dossier_id=n.dossier_id, step_id=n.step_id,
                                     kind=n.kind, url=url, outcome=outcome, status_code=status,
                                     attempt=attempt, error=error)


def log_routing(routing: Routing, changed: bool) -> None:
    log.info(
        "step_withdrawn" if routing.reason == "withdrawn" else "step_routed",
        procedure=f"{routing.procedure_code}@{routing.procedure_version}",
        sector=routing.sector,
        step_id=routing.step_id,
        agency=routing.agency,
        reason=routing.reason,
        due_at=routing.due_at.isoformat(),
        changed=changed,
    )
