"""The audit log, the dossier projection and the agencies' inboxes, written from
the workflow's store writes (`StoreWrite`: one per workflow activation).

Writes arrive at least once (a local activity is re-run when the worker died
before its workflow task completed) and, across `dossiers resync`, out of order.
Two rules make that safe:

* the audit log is keyed by (dossier_id, seq): a repeat is ignored;
* the projection (``dossiers`` + ``dossier_steps``) never moves back: a write applies
  its state only when its newest seq is not older than ``dossiers.last_seq``, and only
  then rewrites the step rows that changed and the inbox items. A write repeated after
  later ones (a retried hand-over of a step that has since been done) changes nothing.
  A write of the *same* seq does apply: after a worker died between a store write and
  its workflow task, the workflow re-runs the transition in a later task (its times
  are those of that task, its order of concurrent changes may differ) and that
  durable version replaces what was written before, in the projection and in the
  audit log's rows of those seqs (counted once in the metrics, as first written).

The check is one conditional upsert
(``INSERT … ON CONFLICT (id) DO UPDATE … WHERE dossiers.last_seq <= excluded.last_seq``),
the same statement on SQLite and PostgreSQL. On PostgreSQL it locks the dossier row
until commit, so concurrent writers for one dossier take turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Connection, Table, TextClause, bindparam, select
from sqlalchemy.orm import Session

from store import inbox, portal_outbox
from store.models import DossierEventRow, DossierRow, DossierStepRow
from store.upsert import insert_on_conflict, row_parameters
from workflows import payloads
from workflows.payloads import DossierEvent, DossierState, StoreWrite

OPEN_STATUSES = tuple(status.value for status in payloads.OPEN_STATUSES)

# Built once (text statements: compiled once per database, then cached by SQLAlchemy).
_DOSSIERS = cast(Table, DossierRow.__table__)
_STEPS = cast(Table, DossierStepRow.__table__)
# A row moves forward only, and only with writes of its own run (a write that names no
# run, as tests' and old callers' do, is of any run). Its run, once known, stays.
_UPSERT_DOSSIER = insert_on_conflict(
    _DOSSIERS, conflict=["id"], update=[c.name for c in _DOSSIERS.columns if c.name != "id"], keep=["run_id"],
    where='"dossiers"."last_seq" <= excluded."last_seq" AND ("dossiers"."run_id" IS NULL OR '
          'excluded."run_id" IS NULL OR "dossiers"."run_id" = excluded."run_id")', returning='"id"')
_EVENTS = cast(Table, DossierEventRow.__table__)
_REWRITTEN = ("kind", "at", "actor", "step_id", "note", "portal_status")
_REWRITE_EVENT = (_EVENTS.update()
                  .where(_EVENTS.c.dossier_id == bindparam("b_dossier_id"), _EVENTS.c.seq == bindparam("b_seq"))
                  .values({name: bindparam(f"b_{name}") for name in _REWRITTEN}))
_UPSERT_STEP = insert_on_conflict(
    _STEPS, conflict=["dossier_id", "step_id"],
    update=[c.name for c in _STEPS.columns if c.name not in ("dossier_id", "step_id")])


class ForeignRunError(ValueError):
    """A write from a workflow run other than the one the projection and the audit log
    describe: the dossier id was reused outside the store's reservation. Nothing of it
    is written (`dossiers resync` reports the dossier)."""


def write_changes(session: Session, write: StoreWrite, *, run_id: str | None = None,
                  now: datetime | None = None, portal: portal_outbox.PortalAdapter | None = None) -> list[DossierEvent]:
    """Apply one store write of workflow run `run_id`; returns the events the audit log
    did not hold yet. Safe to repeat and to call concurrently. With `portal` (the sync
    is on), the events it sends are queued in the portal's outbox, in the same transaction."""
    state = write.state
    if any(event.dossier_id != state.dossier_id for event in write.events):
        raise ValueError(f"a write for {state.dossier_id!r} carries events of another dossier")
    now = now or datetime.now(UTC)
    # Core statements on the session's connection: this runs K + 1 times per dossier.
    connection = session.connection()
    # Projection first: it creates the dossier row the events reference, and on
    # PostgreSQL takes the dossier's row lock before anything else.
    moved = _upsert_dossier(connection, state, write.events[-1].seq, now, run_id)
    if not moved and run_id is not None:  # an older write (a retry), or another run's
        recorded = last_run(session, state.dossier_id)
        if recorded is not None and recorded != run_id:
            raise ForeignRunError(f"dossier {state.dossier_id}: a write of run {run_id}, but the store describes "
                                  f"run {recorded}; nothing written")
    new = _append_events(connection, write.events, now)
    if len(new) < len(write.events):
        # Seqs already written: a retry (the same rows again), or a run whose workflow
        # task was lost, whose writes may even have gone further. The write made now is
        # the durable version of these transitions (the re-run may have taken concurrent
        # changes in another order): it replaces those rows, moved projection or not.
        fresh = {event.seq for event in new}
        again = [{f"b_{k}": v for k, v in _event_values(event, now).items()}
                 for event in write.events if event.seq not in fresh]
        connection.execute(_REWRITE_EVENT, again)
    if portal is not None:
        portal_outbox.append(connection, write, portal, now)
    if moved:
        steps = set(write.steps)
        rows = [row for row in _step_values(state) if row["step_id"] in steps]
        if rows:
            connection.execute(_UPSERT_STEP, rows)
        for routing in write.routings:
            if routing.reason == "withdrawn":
                inbox.remove_item(session, routing.agency, routing.dossier_id, routing.step_id)
            else:
                inbox.add_item(session, routing, now=now)
    return new


def record_event(session: Session, write: StoreWrite, *, now: datetime | None = None) -> bool:
    """One store write; returns whether any of its events was new."""
    return bool(write_changes(session, write, now=now))


def apply_state(session: Session, state: DossierState, seq: int, *, run_id: str | None = None,
                now: datetime | None = None) -> bool:
    """Write ``state`` (every step) of run `run_id` as the projection of its dossier unless
    the projection holds a newer seq or another run (`dossiers resync`). Returns whether
    it was written."""
    now = now or datetime.now(UTC)
    if not _upsert_dossier(session.connection(), state, seq, now, run_id):
        return False  # an older seq: the projection stays as it is
    # Every step row as the state has it (rare: not on the hot path).
    connection = session.connection()
    connection.execute(_STEPS.delete().where(_STEPS.c.dossier_id == state.dossier_id))
    if state.steps:
        connection.execute(_STEPS.insert(), _step_values(state))
    return True


def _upsert_dossier(connection: Connection, state: DossierState, seq: int, now: datetime,
                    run_id: str | None) -> bool:
    return connection.execute(_UPSERT_DOSSIER, _dossier_values(state, seq, now, run_id)).first() is not None


MAX_EVENTS_PER_INSERT = 8  # a write's events go in one INSERT up to this many (usually 1 to 3)


@lru_cache(maxsize=MAX_EVENTS_PER_INSERT)
def _append_events_statement(rows: int) -> TextClause:
    return insert_on_conflict(_EVENTS, conflict=["dossier_id", "seq"], returning='"seq"', rows=rows)


def _append_events(connection: Connection, events: Sequence[DossierEvent], now: datetime) -> list[DossierEvent]:
    """Insert the events the audit log does not hold yet; returns those, in order."""
    fresh: set[int] = set()
    for start in range(0, len(events), MAX_EVENTS_PER_INSERT):
        chunk = events[start:start + MAX_EVENTS_PER_INSERT]
        statement = _append_events_statement(len(chunk))
        parameters = row_parameters([_event_values(event, now) for event in chunk])
        fresh.update(seq for (seq,) in connection.execute(statement, parameters))
    return [event for event in events if event.seq in fresh]


def get_dossier(session: Session, dossier_id: str) -> DossierState | None:
    document = session.scalar(select(DossierRow.state).where(DossierRow.id == dossier_id))
    return None if document is None else DossierState.model_validate(document)


def last_seq(session: Session, dossier_id: str) -> int | None:
    """The seq the projection reflects (compare with the workflow's to resync)."""
    return session.scalar(select(DossierRow.last_seq).where(DossierRow.id == dossier_id))


@dataclass(frozen=True)
class Described:
    """Which dossier the projection row describes: its run, what it was, how far it is."""

    run_id: str | None  # None: written before runs were recorded
    procedure: str  # code@version
    received_at: datetime
    last_seq: int


def described(session: Session, dossier_id: str) -> Described | None:
    row = session.execute(select(DossierRow.run_id, DossierRow.procedure_code, DossierRow.procedure_version,
                                 DossierRow.received_at, DossierRow.last_seq)
                          .where(DossierRow.id == dossier_id)).first()
    if row is None:
        return None
    return Described(row.run_id, f"{row.procedure_code}@{row.procedure_version}", row.received_at, row.last_seq)


def last_run(session: Session, dossier_id: str) -> str | None:
    """The workflow run the projection row describes (None: no row, or written before
    runs were recorded)."""
    return session.scalar(select(DossierRow.run_id).where(DossierRow.id == dossier_id))


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


def _event_values(event: DossierEvent, now: datetime) -> dict[str, Any]:
    return {"dossier_id": event.dossier_id, "seq": event.seq, "kind": event.kind, "at": event.at,
            "actor": event.actor, "step_id": event.step_id, "note": event.note, "portal_status": event.portal_status,
            "recorded_at": now}


def _dossier_values(state: DossierState, seq: int, now: datetime, run_id: str | None = None) -> dict[str, Any]:
    return {
        "id": state.dossier_id,
        "run_id": run_id,
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
        "received_by": state.received_by,
        "finished_at": state.finished_at,
        "awaiting_since": awaiting_since(state),
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


def awaiting_since(state: DossierState) -> datetime | None:
    """When the applicant's current turn began: the latest request of its kind (else the
    instant the clocks stopped); None while the agencies hold the dossier."""
    kind = payloads.APPLICANT_TURN_OPENED_BY.get(state.status)
    if kind is None:
        return None
    return next((note.at for note in reversed(state.notes) if note.kind == kind), state.paused_at)


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
