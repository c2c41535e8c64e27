"""Dossiers the projection has open that Temporal no longer runs, and open dossiers
without a due (issue 13 §5; `lienthong dossiers orphans`).

Marking a dossier abandoned does in the store what the workflow does when a dossier
ends (workflows/dossier.py ``_finish``): the steps agencies hold are skipped and leave
their inboxes. The dossier's row gets the store's own status ``abandoned`` (not open:
the gauges leave it out); its ``state`` and audit log stay as the workflow last wrote
them. A dossier that moved since it was read (``last_seq`` or status changed) is left
alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from store.models import ABANDONED, DossierRow, DossierStepRow, InboxItemRow
from workflows.payloads import OPEN_STATUSES, StepStatus

OPEN = tuple(status.value for status in OPEN_STATUSES)
CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True)
class StoredDossier:
    id: str
    sector: str
    procedure: str
    status: str
    received_at: datetime
    due_at: datetime | None
    last_seq: int
    updated_at: datetime


def open_ids(session: Session) -> set[str]:
    """Every open dossier's id (an index-only read of ix_dossiers_open_by_id)."""
    return set(session.scalars(select(DossierRow.id).where(DossierRow.status.in_(OPEN))))


def known_ids(session: Session, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` the projection has, whatever their status."""
    wanted, found = sorted(set(ids)), set[str]()
    for start in range(0, len(wanted), CHUNK):
        found.update(session.scalars(select(DossierRow.id).where(DossierRow.id.in_(wanted[start:start + CHUNK]))))
    return found


def without_due(session: Session, now: datetime, after: timedelta) -> set[str]:
    """Open dossiers without a due whose row was written more than ``after`` before now
    (ix_dossiers_without_due)."""
    return set(session.scalars(select(DossierRow.id).where(
        DossierRow.status.in_(OPEN), DossierRow.due_at.is_(None), DossierRow.updated_at < now - after)))


def details(session: Session, ids: Iterable[str]) -> list[StoredDossier]:
    wanted: list[str] = sorted(set(ids))
    rows: list[tuple[str, str, str, str, datetime, datetime | None, int, datetime]] = []
    for start in range(0, len(wanted), CHUNK):
        rows += session.execute(select(
            DossierRow.id, DossierRow.sector, DossierRow.procedure_code, DossierRow.status, DossierRow.received_at,
            DossierRow.due_at, DossierRow.last_seq, DossierRow.updated_at,
        ).where(DossierRow.id.in_(wanted[start:start + CHUNK]))).tuples().all()
    return sorted((StoredDossier(*row) for row in rows), key=lambda d: d.id)


def abandoned(session: Session) -> list[StoredDossier]:
    ids = session.scalars(select(DossierRow.id).where(DossierRow.status == ABANDONED))
    return details(session, ids)


def mark_abandoned(session: Session, dossiers: Sequence[StoredDossier], now: datetime | None = None) -> list[str]:
    """Mark each dossier abandoned if it is still as read (open, same ``last_seq``);
    returns the ids marked. One transaction: the caller's."""
    now = now or datetime.now(UTC)
    marked = []
    for dossier in dossiers:
        done = session.execute(
            update(DossierRow)
            .where(DossierRow.id == dossier.id, DossierRow.status.in_(OPEN), DossierRow.last_seq == dossier.last_seq)
            .values(status=ABANDONED, updated_at=now)
            .returning(DossierRow.id)
        ).first()
        if done is None:
            continue
        session.execute(
            update(DossierStepRow)
            .where(DossierStepRow.dossier_id == dossier.id, DossierStepRow.status == StepStatus.ASSIGNED.value)
            .values(status=StepStatus.SKIPPED.value)
        )
        session.execute(delete(InboxItemRow).where(InboxItemRow.dossier_id == dossier.id))
        marked.append(dossier.id)
    return marked
