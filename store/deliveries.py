"""Agencies' webhooks: where to send, and a record of every attempt."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import AgencyRow, WebhookDeliveryRow


def webhook_url(session: Session, agency: str) -> str | None:
    """The agency's webhook, or None (no webhook, or an agency the registry does not know)."""
    return session.scalar(select(AgencyRow.webhook_url).where(AgencyRow.code == agency))


def agencies_with_webhooks(session: Session, codes: Collection[str]) -> list[str]:
    """Which of ``codes`` have a webhook, sorted."""
    if not codes:
        return []
    query = select(AgencyRow.code).where(AgencyRow.code.in_(list(codes)), AgencyRow.webhook_url.is_not(None))
    return sorted(session.scalars(query))


def record_delivery(
    session: Session,
    *,
    agency: str,
    dossier_id: str,
    step_id: str,
    kind: str,
    url: str,
    outcome: str,
    status_code: int | None = None,
    attempt: int = 1,
    error: str | None = None,
    at: datetime | None = None,
) -> WebhookDeliveryRow:
    """Append one attempt (every retry is its own row: the history is the point)."""
    row = WebhookDeliveryRow(
        agency=agency,
        dossier_id=dossier_id,
        step_id=step_id,
        kind=kind,
        url=url,
        outcome=outcome,
        status_code=status_code,
        attempt=attempt,
        error=error,
        at=at or datetime.now(UTC),
    )
    session.add(row)
    session.flush()  # assigns the id; a bad kind/outcome fails here, not at commit
    return row


def list_deliveries(
    session: Session, *, dossier_id: str | None = None, agency: str | None = None
) -> Sequence[WebhookDeliveryRow]:
    query = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.at, WebhookDeliveryRow.id)
    if dossier_id is not None:
        query = query.where(WebhookDeliveryRow.dossier_id == dossier_id)
    if agency is not None:
        query = query.where(WebhookDeliveryRow.agency == agency)
    return session.scalars(query).all()
