"""The National Public Service Portal's outbox (table ``portal_outbox``, migration 0008).

Written by the store write of each workflow activation (`store.projection.write_changes`),
in its transaction: a row per event the portal adapter sends (every portal status change,
and the steps of the processing timeline), keyed like the audit log by (dossier_id, seq)
so a repeated write adds nothing. A transition re-run after a worker died (its seqs
written again, store/projection.py) replaces its rows' payloads while they are not
delivered yet; a delivered one stays as sent.

Read by the portal sync (activities/portal.py), which sends a dossier's rows strictly in
seq order: only a dossier's oldest row that waits is *eligible*, so two rows of one
dossier are never in flight together. A row is *pending* until delivered or *parked*
(refused for good); a parked row no longer holds its dossier's later rows back, and is
*superseded* once a later row of its dossier is delivered (each message carries the
dossier's whole timeline: activities/portal_payload.py).

What the payload holds is the adapter's business (the store does not read it), except
the one thing a row must know at write time: the dossier's portal status before the
write, for events that come before the write's first status change.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Table, TextClause, and_, bindparam, exists, func, select, text, update
from sqlalchemy.orm import Session, aliased

from store.models import PortalOutboxRow
from workflows.payloads import DossierEvent, StoreWrite

_OUTBOX = cast(Table, PortalOutboxRow.__table__)
MAX_ERROR_CHARS = 500  # last_error keeps this much of the last failure


class PortalAdapter(Protocol):
    """What the outbox needs of the payload adapter (activities/portal_payload.py)."""

    def sends(self, event: DossierEvent) -> bool:
        """Whether the portal is told of this event."""

    def change(self, write: StoreWrite, event: DossierEvent, portal_status: int) -> dict[str, Any]:
        """The row's payload: the change `event` made, the dossier then showing `portal_status`."""


@cache
def _append_statement() -> TextClause:
    columns = ("dossier_id", "seq", "kind", "portal_status", "payload", "created_at", "attempts")
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(f":{c}" for c in columns)
    # Undelivered rows take the latest version of their transition; delivered ones stay as sent.
    sql = (f'INSERT INTO "portal_outbox" ({names}) VALUES ({values}) ON CONFLICT ("dossier_id", "seq") DO UPDATE '
           'SET "kind" = excluded."kind", "portal_status" = excluded."portal_status", '
           '"payload" = excluded."payload" WHERE "portal_outbox"."delivered_at" IS NULL')
    return text(sql).bindparams(*(bindparam(c, type_=_OUTBOX.c[c].type) for c in columns))


def append(connection: Connection, write: StoreWrite, adapter: PortalAdapter, now: datetime) -> int:
    """Queue the write's events the adapter sends; returns how many rows it wrote or kept."""
    status = _status_before(connection, write)
    rows = []
    for event in write.events:
        if event.portal_status is not None:
            status = event.portal_status
        if not adapter.sends(event):
            continue
        if status is None:  # unknown before the first status change (nothing queued before it)
            status = next(e.portal_status for e in write.events if e.portal_status is not None)
        rows.append({"dossier_id": event.dossier_id, "seq": event.seq, "kind": event.kind, "portal_status": status,
                     "payload": adapter.change(write, event, status), "created_at": now, "attempts": 0})
    if rows:
        connection.execute(_append_statement(), rows)
    return len(rows)


def _status_before(connection: Connection, write: StoreWrite) -> int | None:
    """The dossier's portal status before this write, when an event needs it: the last
    row queued before (every status change is queued). None: not needed, or no row."""
    first = write.events[0]
    if first.portal_status is not None:
        return None
    if all(event.portal_status is None for event in write.events):
        return write.state.portal_status  # no change in this write: what the state shows
    return connection.execute(
        select(PortalOutboxRow.portal_status)
        .where(PortalOutboxRow.dossier_id == first.dossier_id, PortalOutboxRow.seq < first.seq)
        .order_by(PortalOutboxRow.seq.desc()).limit(1)).scalar()


# --------------------------------------------------------------------------- the sync's side


def _pending(row: type[PortalOutboxRow] = PortalOutboxRow) -> Any:
    """The partial indexes' condition, word for word (SQLite matches it textually)."""
    return and_(row.delivered_at.is_(None), row.parked_at.is_(None))


@dataclass(frozen=True)
class Claimed:
    id: int
    dossier_id: str
    seq: int
    kind: str
    attempts: int

    @property
    def delivery_id(self) -> str:
        """The same for every attempt of this change: the portal de-duplicates on it."""
        return f"{self.dossier_id}:{self.seq}"


def claim(session: Session, limit: int) -> list[Claimed]:
    """Up to `limit` eligible rows, oldest first: each one is the oldest pending row of its
    dossier, so a batch holds one row per dossier and a dossier's rows go in seq order."""
    earlier = aliased(PortalOutboxRow, name="earlier")
    query = (select(PortalOutboxRow.id, PortalOutboxRow.dossier_id, PortalOutboxRow.seq, PortalOutboxRow.kind,
                    PortalOutboxRow.attempts)
             .where(_pending(), ~exists().where(earlier.dossier_id == PortalOutboxRow.dossier_id,
                                                earlier.seq < PortalOutboxRow.seq, _pending(earlier)))
             .order_by(PortalOutboxRow.created_at, PortalOutboxRow.id).limit(limit))
    return [Claimed(*row) for row in session.execute(query).tuples()]


def payloads_until(session: Session, dossier_id: str, seq: int) -> list[dict[str, Any]]:
    """The payloads of a dossier's rows up to `seq`, in seq order (the message for `seq`
    is built from them: activities/portal_payload.py)."""
    query = (select(PortalOutboxRow.payload)
             .where(PortalOutboxRow.dossier_id == dossier_id, PortalOutboxRow.seq <= seq)
             .order_by(PortalOutboxRow.seq))
    return list(session.scalars(query))


def mark_delivered(session: Session, row_id: int, at: datetime, payload: dict[str, Any] | None = None) -> None:
    """Delivered; `payload` replaces the stored one (the adapter drops person data)."""
    values: dict[str, Any] = {"delivered_at": at, "attempts": PortalOutboxRow.attempts + 1, "last_error": None}
    if payload is not None:
        values["payload"] = payload
    session.execute(update(PortalOutboxRow).where(PortalOutboxRow.id == row_id).values(values))


def record_failure(session: Session, row_id: int, error: str) -> None:
    """A failed attempt that will be retried."""
    session.execute(update(PortalOutboxRow).where(PortalOutboxRow.id == row_id)
                    .values(attempts=PortalOutboxRow.attempts + 1, last_error=error[:MAX_ERROR_CHARS]))


def park(session: Session, row_id: int, at: datetime, error: str) -> None:
    """Refused for good: not sent again unless an operator asks (`retry_parked`)."""
    session.execute(update(PortalOutboxRow).where(PortalOutboxRow.id == row_id)
                    .values(parked_at=at, attempts=PortalOutboxRow.attempts + 1, last_error=error[:MAX_ERROR_CHARS]))


def _superseded(row: type[PortalOutboxRow]) -> Any:
    later = aliased(PortalOutboxRow, name="later")
    return exists().where(later.dossier_id == row.dossier_id, later.seq > row.seq, later.delivered_at.is_not(None))


def _parked(row: type[PortalOutboxRow] = PortalOutboxRow) -> Any:
    return and_(row.parked_at.is_not(None), row.delivered_at.is_(None))


@dataclass(frozen=True)
class Parked:
    dossier_id: str
    seq: int
    kind: str
    portal_status: int
    parked_at: datetime | None  # never None: the query takes parked rows only
    attempts: int
    last_error: str | None


def list_parked(session: Session, dossier_ids: Collection[str] = ()) -> list[Parked]:
    """Parked rows that no later delivered row supersedes (the ones the portal lacks)."""
    query = (select(PortalOutboxRow.dossier_id, PortalOutboxRow.seq, PortalOutboxRow.kind,
                    PortalOutboxRow.portal_status, PortalOutboxRow.parked_at, PortalOutboxRow.attempts,
                    PortalOutboxRow.last_error)
             .where(_parked(), ~_superseded(PortalOutboxRow))
             .order_by(PortalOutboxRow.dossier_id, PortalOutboxRow.seq))
    if dossier_ids:
        query = query.where(PortalOutboxRow.dossier_id.in_(sorted(dossier_ids)))
    return [Parked(*row) for row in session.execute(query).tuples()]


def retry_parked(session: Session, dossier_ids: Collection[str] = ()) -> list[Parked]:
    """Send parked rows again (of `dossier_ids`, or all): those no later delivered row
    supersedes become pending, in their place in their dossier's order. Returns them."""
    found = list_parked(session, dossier_ids)
    for row in found:
        session.execute(update(PortalOutboxRow)
                        .where(PortalOutboxRow.dossier_id == row.dossier_id, PortalOutboxRow.seq == row.seq)
                        .values(parked_at=None))
    return found


@dataclass(frozen=True)
class Backlog:
    """What the exporter reports (monitoring/collector.py)."""

    pending: int  # rows waiting to be sent
    oldest_pending_at: datetime | None  # when the oldest of them was written
    parked: int  # refused for good, not superseded


def backlog(session: Session) -> Backlog:
    pending, oldest = session.execute(
        select(func.count(), func.min(PortalOutboxRow.created_at)).where(_pending())).one()
    parked = session.scalar(select(func.count()).select_from(PortalOutboxRow)
                            .where(_parked(), ~_superseded(PortalOutboxRow)))
    return Backlog(int(pending), oldest, int(parked or 0))


@dataclass(frozen=True)
class Failure:
    dossier_id: str
    seq: int
    attempts: int
    last_error: str


def oldest_failure(session: Session) -> Failure | None:
    """The oldest waiting change that has failed: what holds the sync up."""
    row = session.execute(
        select(PortalOutboxRow.dossier_id, PortalOutboxRow.seq, PortalOutboxRow.attempts, PortalOutboxRow.last_error)
        .where(_pending(), PortalOutboxRow.last_error.is_not(None))
        .order_by(PortalOutboxRow.created_at, PortalOutboxRow.id).limit(1)).first()
    return None if row is None else Failure(row.dossier_id, row.seq, row.attempts, row.last_error)


def list_rows(session: Session, dossier_id: str) -> Sequence[PortalOutboxRow]:
    return session.scalars(select(PortalOutboxRow).where(PortalOutboxRow.dossier_id == dossier_id)
                           .order_by(PortalOutboxRow.seq)).all()
