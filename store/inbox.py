"""Agencies' inboxes: the steps routed to them and not yet taken back or done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from store.models import DossierRow, InboxItemRow
from store.upsert import insert_on_conflict
from workflows.payloads import DossierStatus, Routing

# Built once (text statements: compiled once per database, then cached). They run on
# the session's connection: a store write runs them for every hand-over, and the ORM's
# own execute path and statement construction cost more than the statements.
_ITEMS = InboxItemRow.__table__
_KEY = ("agency", "dossier_id", "step_id")
_DETAILS = ("procedure_code", "procedure_version", "sector", "step_name", "assigned_at", "due_at")
_WHERE_KEY = " AND ".join(f'"{name}" = :{name}' for name in _KEY)
_SET_DETAILS = ", ".join(f'"{name}" = :{name}' for name in _DETAILS)
_ADD_ITEM = insert_on_conflict(_ITEMS, conflict=list(_KEY))
_MOVE_ITEM = text(f'UPDATE "inbox_items" SET {_SET_DETAILS} WHERE {_WHERE_KEY}').bindparams(
    *(bindparam(name, type_=_ITEMS.c[name].type) for name in _DETAILS))
_REMOVE_ITEM = text(f'DELETE FROM "inbox_items" WHERE {_WHERE_KEY} RETURNING 1')


@dataclass(frozen=True)
class InboxItem:
    agency: str
    dossier_id: str
    step_id: str
    step_name: str
    procedure_code: str
    procedure_version: int
    sector: str
    assigned_at: datetime
    due_at: datetime
    overdue: bool  # due_at had passed at the `now` the list was made for
    received_by: str | None = None  # the desk that received the dossier (Art. 14: maybe not this agency's area)


@dataclass(frozen=True)
class AwaitingReceipt:
    """A dossier submitted online to a desk, not received (nor refused) yet."""

    dossier_id: str
    procedure_code: str
    procedure_version: int
    procedure_name: str
    sector: str
    channel: str
    submitted_at: datetime


def add_item(session: Session, routing: Routing, *, now: datetime | None = None) -> bool:
    """Put the routed step in the agency's inbox; returns whether it was not there yet.

    Repeating a routing changes nothing; a re-route (after the applicant supplemented,
    or an extension) moves the item to its new due instant.
    """
    if routing.reason == "withdrawn":
        raise ValueError("a withdrawn step is taken out of the inbox with remove_item, not added")
    key = {"agency": routing.agency, "dossier_id": routing.dossier_id, "step_id": routing.step_id}
    details = {
        "procedure_code": routing.procedure_code,
        "procedure_version": routing.procedure_version,
        "sector": routing.sector,
        "step_name": routing.step_name,
        "assigned_at": routing.assigned_at,
        "due_at": routing.due_at,
    }
    connection = session.connection()
    created = connection.execute(_ADD_ITEM, {**key, **details, "created_at": now or datetime.now(UTC)}).first()
    if created is not None:
        return True
    connection.execute(_MOVE_ITEM, {**key, **details})
    return False


def holds(session: Session, agency: str, dossier_id: str, step_id: str) -> bool:
    """Whether the agency's inbox has the step."""
    query = select(InboxItemRow.step_id).where(
        InboxItemRow.agency == agency, InboxItemRow.dossier_id == dossier_id, InboxItemRow.step_id == step_id)
    return session.scalar(query) is not None


def remove_item(session: Session, agency: str, dossier_id: str, step_id: str) -> bool:
    """Take a step out of an agency's inbox; returns whether it was there."""
    key = {"agency": agency, "dossier_id": dossier_id, "step_id": step_id}
    # Counted with RETURNING, not rowcount (store/upsert.py `touched` says why).
    return len(session.connection().execute(_REMOVE_ITEM, key).all()) == 1


def list_items(
    session: Session, agency: str, limit: int = 100, offset: int = 0, *, now: datetime
) -> list[InboxItem]:
    """An agency's inbox, most urgent first."""
    query = (
        select(InboxItemRow, DossierRow.received_by)
        .outerjoin(DossierRow, DossierRow.id == InboxItemRow.dossier_id)
        .where(InboxItemRow.agency == agency)
        .order_by(InboxItemRow.due_at, InboxItemRow.dossier_id, InboxItemRow.step_id)
        .limit(limit)
        .offset(offset)
    )
    return [
        InboxItem(
            agency=row.agency,
            dossier_id=row.dossier_id,
            step_id=row.step_id,
            step_name=row.step_name,
            procedure_code=row.procedure_code,
            procedure_version=row.procedure_version,
            sector=row.sector,
            assigned_at=row.assigned_at,
            due_at=row.due_at,
            overdue=row.due_at < now,
            received_by=received_by,
        )
        for row, received_by in session.execute(query).tuples()
    ]


def list_awaiting_receipt(session: Session, desk: str, limit: int = 100) -> list[AwaitingReceipt]:
    """The dossiers submitted online to `desk` that it has not received or refused yet,
    longest waiting first (the partial index ix_dossiers_awaiting_receipt)."""
    query = (select(DossierRow.id, DossierRow.procedure_code, DossierRow.procedure_version,
                    DossierRow.procedure_name, DossierRow.sector, DossierRow.channel, DossierRow.received_at)
             .where(DossierRow.status == DossierStatus.SUBMITTED.value, DossierRow.received_by == desk)
             .order_by(DossierRow.received_at, DossierRow.id)
             .limit(limit))
    return [AwaitingReceipt(dossier_id=row.id, procedure_code=row.procedure_code,
                            procedure_version=row.procedure_version, procedure_name=row.procedure_name,
                            sector=row.sector, channel=row.channel, submitted_at=row.received_at)
            for row in session.execute(query)]
