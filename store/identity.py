"""Dossier identity: an id, once received, is reserved here and never accepted again,
whatever Temporal remembers (DESIGN decision 5c; migration 0004).

`DossierClient.start` reserves the id in a transaction of its own before it starts the
workflow, then records the run it started. The reservation names the request that made
it, so the crash window between the two is safe:

* reserved, never started (the engine did not answer): a retry of the *same* request
  may start it; any other request is refused;
* started: a retry of the same request gets the run it started (never a second one);
  any other request is refused, even after Temporal has forgotten the workflow (a dev
  server restarted in memory, or retention in production).

A projection row without a reservation (a workflow started by another path) makes its
id taken as well: it is reserved on the spot, for no request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from store.models import DossierIdRow, DossierRow
from store.upsert import insert_on_conflict

_IDS = cast(Table, DossierIdRow.__table__)
_RESERVE = insert_on_conflict(_IDS, conflict=["id"], returning='"id"')


@dataclass(frozen=True)
class Reservation:
    """What the store holds for an id once `reserve` has run."""

    dossier_id: str
    mine: bool  # reserved by this call, or by an earlier attempt of the same request
    request: str | None
    run_id: str | None  # the run started for it, if recorded
    status: str | None  # the projection's status, if it has a row


def reserve(session: Session, dossier_id: str, *, request: str | None, received_by: str | None,
            now: datetime | None = None) -> Reservation:
    """Reserve `dossier_id` for `request` unless it is taken. `mine` says whether the
    caller may go on (a new reservation, or its own earlier one); otherwise the id is
    another dossier's. Commit before starting anything."""
    now = now or datetime.now(UTC)
    status = session.scalar(select(DossierRow.status).where(DossierRow.id == dossier_id))
    claimed = request if status is None else None  # an id the projection holds is nobody's to start again
    values = {"id": dossier_id, "request": claimed, "received_by": received_by, "reserved_at": now,
              "run_id": None, "started_at": None}
    if session.execute(_RESERVE, values).first() is not None:
        return Reservation(dossier_id, status is None, claimed, None, status)
    row = session.get(DossierIdRow, dossier_id)
    assert row is not None  # reserved ids are never deleted
    mine = request is not None and row.request == request
    return Reservation(dossier_id, mine, row.request, row.run_id, status)


def record_run(session: Session, dossier_id: str, run_id: str, *, now: datetime | None = None) -> bool:
    """Record the run started for a reserved id (once: a recorded run is never replaced).
    Returns whether it was recorded now."""
    statement = (update(DossierIdRow)
                 .where(DossierIdRow.id == dossier_id, DossierIdRow.run_id.is_(None))
                 .values(run_id=run_id, started_at=now or datetime.now(UTC))
                 .returning(DossierIdRow.id))
    return session.execute(statement).first() is not None


def get(session: Session, dossier_id: str) -> DossierIdRow | None:
    return session.get(DossierIdRow, dossier_id)


def received_by(session: Session, dossier_id: str) -> str | None:
    """The desk that received the dossier, as its reservation recorded it."""
    return session.scalar(select(DossierIdRow.received_by).where(DossierIdRow.id == dossier_id))
