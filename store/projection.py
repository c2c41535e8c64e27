"""The audit log and the dossier projection, written from the workflow's events.

Events arrive at least once and in any order (activity retries, parallel branches).
Two rules make that safe:

* the audit log is keyed by (dossier_id, seq): a repeat is ignored;
* the projection (``dossiers`` + ``dossier_steps``) only moves forward: it is replaced
  by an event's state only when that event's seq is newer than ``dossiers.last_seq``.

The forward-only check is one conditional upsert
(``INSERT … ON CONFLICT (id) DO UPDATE … WHERE dossiers.last_seq < excluded.last_seq``),
the same statement on SQLite and PostgreSQL. On PostgreSQL it locks the dossier row
until commit, so concurrent writers for one dossier take turns for the steps too;
SQLite has a single writer anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from store.models import DossierEventRow, DossierRow, DossierStepRow
from store.upsert import insert_on_conflict
from workflows.payloads import DossierEvent, DossierState, DossierStatus, StepStatus

OPEN_STATUSES = (DossierStatus.PROCESSING.value, DossierStatus.AWAITING_SUPPLEMENT.value)

# Built once (text statements: compiled once per database, then cached by SQLAlchemy).
_DOSSIERS = DossierRow.__table__
_STEPS = DossierStepRow.__table__
_UPSERT_DOSSIER = insert_on_conflict(
    _DOSSIERS, conflict=["id"], update=[c.name for c in _DOSSIERS.columns if c.name != "id"],
    where='"dossiers"."last_seq" < excluded."last_seq"', returning='"id"')
_APPEND_EVENT = insert_on_conflict(DossierEventRow.__table__, conflict=["dossier_id", "seq"])
_DELETE_STEPS = _STEPS.delete().where(_STEPS.c.dossier_id == bindparam("dossier_id"))
_INSERT_STEPS = _STEPS.insert()


def record_event(session: Session, event: DossierEvent, *, now: datetime | None = None) -> bool:
    """Append ``event`` to the audit log and move the projection forward to its state.

    Returns whether the event was new. Safe to repeat and to call concurrently.
    """
    if event.state.dossier_id != event.dossier_id:
        raise ValueError(
            f"event for {event.dossier_id!r} carries the state of {event.state.dossier_id!r}"
        )
    now = now or datetime.now(UTC)
    # Projection first: it creates the dossier row the event references, and on
    # PostgreSQL takes the dossier's row lock before anything else.
    apply_state(session, event.state, event.seq, now=now)
    row = {
        "dossier_id": event.dossier_id,
        "seq": event.seq,
        "kind": event.kind,
        "at": event.at,
        "actor": event.actor,
        "step_id": event.step_id,
        "note": event.note,
        "recorded_at": now,
    }
    return session.execute(_APPEND_EVENT, row).first() is not None


def apply_state(session: Session, state: DossierState, seq: int, *, now: datetime | None = None) -> bool:
    """Write ``state`` as the projection of its dossier if ``seq`` is newer than what
    the projection holds. Returns whether it was written."""
    now = now or datetime.now(UTC)
    if session.execute(_UPSERT_DOSSIER, _dossier_values(state, seq, now)).first() is None:
        return False  # an older or repeated seq: the projection stays as it is
    # Steps are replaced wholesale: the state lists every step the dossier has.
    # (Core statements on the table: the ORM's bulk paths add nothing here.)
    connection = session.connection()
    connection.execute(_DELETE_STEPS, {"dossier_id": state.dossier_id})
    if state.steps:
        connection.execute(_INSERT_STEPS, _step_values(state))
    return True


def get_dossier(session: Session, dossier_id: str) -> DossierState | None:
    document = session.scalar(select(DossierRow.state).where(DossierRow.id == dossier_id))
    return None if document is None else DossierState.model_validate(document)


def last_seq(session: Session, dossier_id: str) -> int | None:
    """The seq the projection reflects (compare with the workflow's to resync)."""
    return session.scalar(select(DossierRow.last_seq).where(DossierRow.id == dossier_id))


def step_belongs_in_inbox(session: Session, dossier_id: str, step_id: str) -> bool:
    """Whether the newest state the projection holds still has ``step_id`` waiting in its
    agency's inbox: assigned, and not the step the applicant is supplementing documents
    for. A dossier the projection does not know yet gets the benefit of the doubt.

    Hand-overs are retried at least once: a routing whose first attempt committed but was
    never reported (a killed worker, a restarted server) runs again, possibly after the
    step was completed and taken out of the inbox. Checked against this newest state, the
    late retry puts nothing back. The dossier row is locked (PostgreSQL), so a concurrent
    hand-over of the same dossier waits for this one.
    """
    document = session.scalar(select(DossierRow.state).where(DossierRow.id == dossier_id).with_for_update())
    if document is None:
        return True
    step = next((s for s in document.get("steps", []) if s.get("id") == step_id), None)
    if step is None or step.get("status") != StepStatus.ASSIGNED.value:
        return False
    if document.get("paused_at") is not None:
        asked = [n for n in document.get("notes", []) if n.get("kind") == "supplement_requested"]
        if asked and asked[-1].get("step_id") == step_id:
            return False
    return True


def list_events(session: Session, dossier_id: str) -> Sequence[DossierEventRow]:
    query = select(DossierEventRow).where(DossierEventRow.dossier_id == dossier_id).order_by(DossierEventRow.seq)
    return session.scalars(query).all()


def open_dossier_ids(session: Session, calendar: str | None = None) -> list[str]:
    """Dossiers still running (processing or awaiting a supplement), optionally of one calendar."""
    query = select(DossierRow.id).where(DossierRow.status.in_(OPEN_STATUSES)).order_by(DossierRow.id)
    if calendar is not None:
        query = query.where(DossierRow.calendar == calendar)
    return list(session.scalars(query))


# --------------------------------------------------------------------------- helpers


def _dossier_values(state: DossierState, seq: int, now: datetime) -> dict[str, Any]:
    return {
        "id": state.dossier_id,
        "procedure_code": state.procedure_code,
        "procedure_version": state.procedure_version,
        "procedure_name": state.procedure_name,
        "sector": state.sector,
        "level": state.level,
        "calendar": state.calendar,
        "channel": state.channel,
        "status": state.status.value,
        "portal_status": state.portal_status,
        "received_at": state.received_at,
        "clock_started_at": state.clock_started_at,
        "due_at": state.due_at,
        "original_due_at": state.original_due_at,
        "completed_at": state.completed_at,
        "verdict": state.verdict,
        "overdue": state.overdue,
        "supplement_count": state.supplement_count,
        "current_agencies": state.current_agencies,
        "last_seq": seq,
        "state": state.model_dump(mode="json"),
        "updated_at": now,
    }


def _step_values(state: DossierState) -> list[dict[str, Any]]:
    return [
        {
            "dossier_id": state.dossier_id,
            "step_id": step.id,
            "position": position,
            "name": step.name,
            "agency": step.agency,
            "status": step.status.value,
            "assigned_at": step.assigned_at,
            "due_at": step.due_at,
            "original_due_at": step.original_due_at,
            "completed_at": step.completed_at,
            "verdict": step.verdict,
            "overdue": step.overdue,
            "escalations": step.escalations,
            "extensions": step.extensions,
        }
        for position, step in enumerate(state.steps)
    ]
