"""The exporter's custom collector: current-state gauges computed from the projection
database, so they are right across restarts and however many workers run.

A read of the store is ten grouped queries (never a loop over dossiers), plus three over
the small registries to report zeros for every known sector, level and desk:

========  ==========================================================  ============================================
query     families                                                    index it reads (migration 0003)
========  ==========================================================  ============================================
dossiers  ``lienthong_dossiers_open{sector,level,status}``,            ``ix_dossiers_open``: partial over open
          ``lienthong_dossiers_awaiting_supplement{sector}``,          dossiers, covering, in GROUP BY order: one
          ``lienthong_dossiers_overdue{sector,level}``,                index-only pass for the six families
          ``lienthong_oldest_overdue_age_seconds{sector}``,
          ``lienthong_procedure_dossiers_open{sector,procedure}``,
          ``lienthong_procedure_dossiers_overdue{sector,procedure}``
steps     ``lienthong_steps_open{sector,agency}``,                     ``ix_dossier_steps_held`` (partial over held
          ``lienthong_steps_overdue{sector,agency}``                   steps) joined to ``ix_dossiers_open_by_id``
                                                                       (partial over open dossiers), by dossier
finished  the same two, for held steps of finished dossiers            ``ix_dossier_steps_held``, ``pk_dossiers``
stuck     ``lienthong_dossiers_abandoned{sector}``,                    ``ix_dossiers_abandoned``,
          ``lienthong_dossiers_without_due{sector}``                   ``ix_dossiers_without_due`` (migration 0005:
                                                                       partial, covering; normally empty)
receipt   ``lienthong_dossiers_awaiting_receipt{desk}``,               ``ix_dossiers_awaiting_receipt`` (migration
          ``lienthong_dossier_receipt_wait_oldest_seconds{desk}``,     0007: partial over submitted dossiers; the
          ``..._receipt_wait_oldest_working_seconds{desk}``            calendar is read from their rows, few)
applicant ``lienthong_dossier_applicant_wait_oldest_seconds``          ``ix_dossiers_awaiting_applicant`` (migration
          ``{sector,reason}``                                          0011: partial, covering)
withdrawn ``lienthong_dossiers_withdrawal_requested{sector}``          ``ix_dossiers_withdrawal_requested`` (0011:
                                                                       partial over portal status 7; normally empty)
portal    ``lienthong_portal_sync_pending``,                           ``ix_portal_outbox_pending_created`` and
          ``lienthong_portal_sync_lag_seconds``,                       ``ix_portal_outbox_parked`` (migration 0008:
          ``lienthong_portal_sync_parked``                             partial; normally a handful of rows)
========  ==========================================================  ============================================

The dossiers query also gives ``lienthong_dossiers_awaiting_applicant{sector,level,reason}``:
portal statuses 5 (``reason="supplement"``) and 6 (``reason="obligation"``), the
applicant's turn (issue 14).

**Portal statuses 1, 5, 6 and 7** (issue 14). An online dossier is *awaiting receipt*
(status 1, ``submitted``) until a desk receives or refuses it; ``desk`` is the desk it
is addressed to (``dossiers.received_by``; ``none`` when it names none), and its wait
runs from its submission (``received_at`` of a submitted row). The working wait is
counted in the dossier's calendar (``definitions/calendars``, what its dues are counted
in: 8 working hours is one working day of vn-gov); a calendar that cannot be loaded
counts wall-clock time instead (longer, so an alert fires no later) and is logged. The
applicant's wait (5, 6) runs from the latest request (``dossiers.awaiting_since``), in
wall-clock time: it is the applicant's time, paid or supplied in calendar days. A
dossier shows status 7 (withdrawal requested) only between the request and the stop,
which the workflow writes together: any dossier counted there is a withdrawal that did
not stop.

**Portal** (README "National Public Service Portal"): the changes waiting in the
outbox to be sent to the National Public Service Portal, how long the oldest of them
has waited since it was written (0 when none waits: the sync is keeping up, or off),
and the changes the portal refused for good that no later delivered change supersedes.

**Stuck** (issue 13): a dossier is *abandoned* when the projection had it open but
Temporal reports its workflow terminated, timed out, failed, cancelled or unknown
(``lienthong dossiers orphans --mark`` sets the status; it is not open, so the other
families leave it out). A dossier is *without a due* when it is open, its ``due_at``
is NULL and its row was last written more than ``NO_DUE_AFTER`` (5 minutes) before
*now*: the workflow computes the due before its first store write, so such a row
means the workflow never got that far.

The steps query joins each held step to its dossier only if that dossier is open (the
small index). Held steps of dossiers that are not open still count as they always did:
the return step a desk holds while the result waits for the applicant (status 9,
``result_ready``), and any left in a finished dossier (the workflow withdraws them when
a dossier ends, so there should be none). The steps query returns them without a
sector, and the third query counts them under their dossiers' sectors, for those
agencies only (the desks, normally); for none, it is a constant false condition that
reads nothing. Statuses are rendered into the SQL, not bound, so both databases can
match the partial indexes' conditions. On PostgreSQL the read runs with ``jit = off``:
the plans are index scans that JIT compilation would only make slower. Results are
those of the queries before migration 0003 (tests/monitoring/test_collector_queries.py).

**When** (see monitoring/README.md): a scrape reads the store itself while reads are
quick (the last one took at most ``budget`` seconds, 0.25 by default): its numbers are
as of the scrape. Once a read takes longer (hundreds of thousands of open dossiers), a
scrape answers at once with the numbers of the last read and starts the next read in
the background, one at a time; ``lienthong_exporter_store_age_seconds`` says how old the
numbers served are (about one scrape interval then) and
``lienthong_exporter_collect_duration_seconds`` how long their read took.

**Overdue**, at the instant *now* of the read:

* a dossier is overdue when it is open (``processing``, ``awaiting_supplement`` or
  ``awaiting_obligation``) and either its ``overdue`` flag is set (the workflow saw a due
  pass: it stays set, also after an extension or while the applicant supplements or
  pays) or it is ``processing`` and its current due (``due_at``, an extension's new
  appointment included) is before *now* (covers the seconds before the workflow records
  it, and workers that are down). While the applicant supplements or pays, the clock is
  stopped: a due passing then is not late (under ``on_obligation: continue`` the clock
  runs, and the workflow's flag counts once it sees the due pass);
* a step is overdue when it is ``assigned`` (held by an agency) and either its flag is
  set, or its dossier is ``processing`` and the step's ``due_at`` is before *now*;
* the oldest overdue age of a sector is *now* minus the earliest due (legal or current)
  among its overdue dossiers, 0 when it has none.

A database that cannot be read makes ``lienthong_exporter_store_up`` 0 and leaves the
store families out of that scrape (the exporter itself stays up: an unreachable
database is not the same alert as a dead exporter).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Select, and_, bindparam, case, false, func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from definitions.calendar import CalendarFileError, UnknownCalendarError, load_calendar
from store import portal_outbox
from store.models import ABANDONED, AgencyRow, DefinitionRow, DossierRow, DossierStepRow, SectorRow
from workflows import payloads
from workflows.payloads import DossierStatus, PortalStatus, StepStatus

log = structlog.get_logger("lienthong.exporter")

PROCESSING = DossierStatus.PROCESSING.value
AWAITING = DossierStatus.AWAITING_SUPPLEMENT.value
SUBMITTED = DossierStatus.SUBMITTED.value
# The applicant's turns (portal 5 and 6), by the `reason` label they are reported under.
REASONS = {DossierStatus.AWAITING_SUPPLEMENT.value: "supplement", DossierStatus.AWAITING_OBLIGATION.value: "obligation"}
PAUSED_STATUSES = tuple(status.value for status in payloads.PAUSED_STATUSES)
WITHDRAWAL_REQUESTED = PortalStatus.WITHDRAWAL_REQUESTED.value
NO_DESK = "none"  # the desk label of an online dossier addressed to no desk
ASSIGNED = StepStatus.ASSIGNED.value
OPEN_STATUSES = tuple(status.value for status in payloads.OPEN_STATUSES)
READ_BUDGET_SECONDS = 0.25  # a read that took longer: later scrapes serve the last read (module docstring)
NO_DUE_AFTER = timedelta(minutes=5)  # an open dossier without a due, written longer ago than this, is stuck


def _constant(name: str, value: object) -> BindParameter[object]:
    """A constant rendered into the SQL: a partial index's condition is matched only
    against literal values (SQLite never sees through a bound parameter, nor does the
    generic plan PostgreSQL may switch a prepared statement to)."""
    return bindparam(name, value, expanding=isinstance(value, tuple), literal_execute=True)


def _open() -> ColumnElement[bool]:
    return DossierRow.status.in_(_constant("open_statuses", OPEN_STATUSES))


def _held() -> ColumnElement[bool]:
    return and_(DossierStepRow.status == _constant("assigned", ASSIGNED), DossierStepRow.agency.is_not(None))


def dossier_overdue(now: datetime) -> ColumnElement[bool]:
    """SQL: an open dossier that is overdue at ``now`` (module docstring)."""
    return and_(
        _open(),
        or_(DossierRow.overdue.is_(True),
            and_(DossierRow.status == _constant("processing", PROCESSING), DossierRow.due_at < now)),
    )


def step_overdue(now: datetime, dossier: type[DossierRow] = DossierRow) -> ColumnElement[bool]:
    """SQL: an assigned step (joined with its dossier, ``dossier``) that is overdue at ``now``."""
    return and_(
        DossierStepRow.status == _constant("assigned", ASSIGNED),
        or_(DossierStepRow.overdue.is_(True),
            and_(dossier.status == _constant("processing", PROCESSING), DossierStepRow.due_at < now)),
    )


@dataclass
class StoreGauges:
    """One read's numbers, keyed by label tuples."""

    at: datetime
    open: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (sector, level, status)
    overdue: dict[tuple[str, str], int] = field(default_factory=dict)  # (sector, level)
    oldest_overdue_age: dict[str, float] = field(default_factory=dict)  # sector -> seconds
    awaiting_supplement: dict[str, int] = field(default_factory=dict)  # sector
    procedure_open: dict[tuple[str, str], int] = field(default_factory=dict)  # (sector, procedure)
    procedure_overdue: dict[tuple[str, str], int] = field(default_factory=dict)
    steps_open: dict[tuple[str, str], int] = field(default_factory=dict)  # (sector, agency)
    steps_overdue: dict[tuple[str, str], int] = field(default_factory=dict)
    abandoned: dict[str, int] = field(default_factory=dict)  # sector
    without_due: dict[str, int] = field(default_factory=dict)  # sector
    awaiting_applicant: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (sector, level, reason)
    applicant_wait_oldest: dict[tuple[str, str], float] = field(default_factory=dict)  # (sector, reason) -> s
    withdrawal_requested: dict[str, int] = field(default_factory=dict)  # sector
    awaiting_receipt: dict[str, int] = field(default_factory=dict)  # desk
    receipt_wait_oldest: dict[str, float] = field(default_factory=dict)  # desk -> seconds
    receipt_wait_oldest_working: dict[str, float] = field(default_factory=dict)  # desk -> working seconds
    portal_pending: int = 0  # changes waiting in the National Portal's outbox
    portal_lag: float = 0.0  # seconds the oldest of them has waited
    portal_parked: int = 0  # refused for good, not superseded


def read_gauges(session: Session, now: datetime | None = None) -> StoreGauges:
    """Run the grouped queries; every known sector/level is reported, at 0 if need be."""
    now = now or datetime.now(UTC)
    g = StoreGauges(at=now)

    # Zeros for what the registries know, so "no overdue" is 0, not a missing series
    # (alerts compare with `offset 1h`; dashboards show 0 rather than "No data").
    sector_levels = set(session.execute(select(DefinitionRow.sector, DefinitionRow.level).distinct()).tuples())
    sectors = set(session.scalars(select(SectorRow.code))) | {sector for sector, _ in sector_levels}
    for sector, level in sector_levels:
        g.overdue[(sector, level)] = 0
        for status in OPEN_STATUSES:
            g.open[(sector, level, status)] = 0
        for reason in REASONS.values():
            g.awaiting_applicant[(sector, level, reason)] = 0
    for sector in sectors:
        g.awaiting_supplement[sector] = 0
        g.oldest_overdue_age[sector] = 0.0
        g.abandoned[sector] = 0
        g.without_due[sector] = 0
        g.withdrawal_requested[sector] = 0
        for reason in REASONS.values():
            g.applicant_wait_oldest[(sector, reason)] = 0.0
    desks = session.scalars(select(AgencyRow.code).where(AgencyRow.receives_dossiers.is_(True),
                                                         AgencyRow.retired_at.is_(None)))
    for desk in desks:
        g.awaiting_receipt[desk] = 0
        g.receipt_wait_oldest[desk] = 0.0
        g.receipt_wait_oldest_working[desk] = 0.0

    # One pass over the open dossiers, in the order of ix_dossiers_open, for six families:
    # open by (sector, level, status), awaiting by sector, overdue by (sector, level), the
    # oldest overdue by sector, open and overdue by procedure.
    late = dossier_overdue(now)
    dossier_rows = session.execute(
        select(DossierRow.sector, DossierRow.level, DossierRow.status, DossierRow.procedure_code, func.count(),
               func.sum(case((late, 1), else_=0)),
               func.min(case((late, DossierRow.due_at))), func.min(case((late, DossierRow.original_due_at))))
        .where(_open())
        .group_by(DossierRow.sector, DossierRow.level, DossierRow.status, DossierRow.procedure_code)
    ).tuples()
    for sector, level, status, procedure, count, overdue, first_due, first_legal_due in dossier_rows:
        overdue = int(overdue or 0)
        g.open[(sector, level, status)] = g.open.get((sector, level, status), 0) + count
        if status == AWAITING:
            g.awaiting_supplement[sector] = g.awaiting_supplement.get(sector, 0) + count
        if status in REASONS:
            key = (sector, level, REASONS[status])
            g.awaiting_applicant[key] = g.awaiting_applicant.get(key, 0) + count
        g.procedure_open[(sector, procedure)] = g.procedure_open.get((sector, procedure), 0) + count
        g.procedure_overdue[(sector, procedure)] = g.procedure_overdue.get((sector, procedure), 0) + overdue
        g.overdue[(sector, level)] = g.overdue.get((sector, level), 0) + overdue
        earliest = min((d for d in (first_due, first_legal_due) if d is not None), default=None)
        if earliest is not None:
            age = max(0.0, (now - earliest).total_seconds())
            g.oldest_overdue_age[sector] = max(g.oldest_overdue_age.get(sector, 0.0), age)

    # Held steps, each joined to its dossier if that dossier is open. Those of other
    # dossiers (a desk's return step while the result waits, status 9; none of finished
    # ones: the workflow withdraws them) come back without a sector; the next query counts
    # them under their own dossiers' sectors, for the agencies concerned only (none: a
    # query that reads nothing).
    elsewhere: set[str] = set()
    for sector, agency, count, overdue in session.execute(_held_steps(now)).tuples():
        if sector is None:
            elsewhere.add(agency)
            continue
        g.steps_open[(sector, agency)] = count
        g.steps_overdue[(sector, agency)] = int(overdue or 0)
    for sector, agency, count, overdue in session.execute(_held_steps_of_finished(now, elsewhere)).tuples():
        g.steps_open[(sector, agency)] = g.steps_open.get((sector, agency), 0) + count
        g.steps_overdue[(sector, agency)] = g.steps_overdue.get((sector, agency), 0) + int(overdue or 0)

    # Stuck dossiers, each from its own small partial index (migration 0005).
    for sector, count in session.execute(_abandoned()).tuples():
        g.abandoned[sector] = count
    for sector, count in session.execute(_without_due(now)).tuples():
        g.without_due[sector] = count

    # The applicant's turns, withdrawals not stopped, and online dossiers waiting for a desk (issue 14).
    for sector, status, since in session.execute(_applicant_waits()).tuples():
        if since is not None:
            turn = (sector, REASONS[status])
            g.applicant_wait_oldest[turn] = max(g.applicant_wait_oldest.get(turn, 0.0), _age(now, since))
    for sector, count in session.execute(_withdrawals_requested()).tuples():
        g.withdrawal_requested[sector] = g.withdrawal_requested.get(sector, 0) + count
    for desk, calendar, count, since in session.execute(_awaiting_receipt()).tuples():
        desk = desk or NO_DESK
        g.awaiting_receipt[desk] = g.awaiting_receipt.get(desk, 0) + count
        g.receipt_wait_oldest[desk] = max(g.receipt_wait_oldest.get(desk, 0.0), _age(now, since))
        working = _working_age(calendar, since, now)
        g.receipt_wait_oldest_working[desk] = max(g.receipt_wait_oldest_working.get(desk, 0.0), working)

    # The National Portal's outbox (migration 0008's partial indexes).
    backlog = portal_outbox.backlog(session)
    g.portal_pending, g.portal_parked = backlog.pending, backlog.parked
    if backlog.oldest_pending_at is not None:
        g.portal_lag = max(0.0, (now - backlog.oldest_pending_at).total_seconds())
    return g


def _age(now: datetime, since: datetime) -> float:
    return max(0.0, (now - since).total_seconds())


def _working_age(calendar: str, since: datetime, now: datetime) -> float:
    """Working seconds from ``since`` to ``now`` in ``calendar``; wall-clock seconds when
    the calendar cannot be loaded (longer: an alert on it fires no later)."""
    try:
        return max(0.0, load_calendar(calendar).elapsed(since, now).total_seconds())
    except (UnknownCalendarError, CalendarFileError) as err:
        log.warning("calendar_unavailable", calendar=calendar, error=" ".join(str(err).split())[:300])
        return _age(now, since)


def _applicant_waits() -> Select[Any]:
    """The earliest start of the applicant's current turn, by (sector, status)
    (ix_dossiers_awaiting_applicant: its condition is the WHERE)."""
    return (select(DossierRow.sector, DossierRow.status, func.min(DossierRow.awaiting_since))
            .where(DossierRow.status.in_(_constant("paused_statuses", PAUSED_STATUSES)))
            .group_by(DossierRow.sector, DossierRow.status))


def _withdrawals_requested() -> Select[Any]:
    """Dossiers showing portal status 7, by sector (ix_dossiers_withdrawal_requested)."""
    return (select(DossierRow.sector, func.count())
            .where(DossierRow.portal_status == _constant("withdrawal_requested", WITHDRAWAL_REQUESTED))
            .group_by(DossierRow.sector))


def _awaiting_receipt() -> Select[Any]:
    """Online dossiers waiting for a desk, by (desk, calendar): how many and the earliest
    submission (ix_dossiers_awaiting_receipt)."""
    return (select(DossierRow.received_by, DossierRow.calendar, func.count(), func.min(DossierRow.received_at))
            .where(DossierRow.status == _constant("submitted", SUBMITTED))
            .group_by(DossierRow.received_by, DossierRow.calendar))


def _abandoned() -> Select[Any]:
    """Abandoned dossiers by sector (ix_dossiers_abandoned)."""
    return (select(DossierRow.sector, func.count())
            .where(DossierRow.status == _constant("abandoned", ABANDONED))
            .group_by(DossierRow.sector))


def _without_due(now: datetime) -> Select[Any]:
    """Open dossiers without a due, last written before ``now - NO_DUE_AFTER``, by sector
    (ix_dossiers_without_due: its condition is in the WHERE word for word)."""
    return (select(DossierRow.sector, func.count())
            .where(_open(), DossierRow.due_at.is_(None), DossierRow.updated_at < now - NO_DUE_AFTER)
            .group_by(DossierRow.sector))


def _held_steps(now: datetime) -> Select[Any]:
    """Held steps by (sector, agency): a merge of ix_dossier_steps_held and
    ix_dossiers_open_by_id (both in dossier order) on PostgreSQL, a covering look-up in
    the second per step on SQLite. Sector None: the dossier is not open."""
    return (
        select(DossierRow.sector, DossierStepRow.agency, func.count(), func.sum(case((step_overdue(now), 1), else_=0)))
        .select_from(DossierStepRow)
        .outerjoin(DossierRow, and_(DossierRow.id == DossierStepRow.dossier_id, _open()))
        .where(_held())
        .group_by(DossierRow.sector, DossierStepRow.agency)
    )


def _held_steps_of_finished(now: datetime, agencies: set[str]) -> Select[Any]:
    """Held steps of finished dossiers by (sector, agency), for ``agencies``; with none, a
    constant false condition, which both databases answer without reading a row."""
    finished = aliased(DossierRow, name="finished")
    return (
        select(finished.sector, DossierStepRow.agency, func.count(),
               func.sum(case((step_overdue(now, finished), 1), else_=0)))
        .select_from(DossierStepRow)
        .join(finished, finished.id == DossierStepRow.dossier_id)
        .where(_held(), finished.status.not_in(_constant("open_statuses", OPEN_STATUSES)),
               DossierStepRow.agency.in_(sorted(agencies)) if agencies else false())
        .group_by(finished.sector, DossierStepRow.agency)
    )


def gauge_families(g: StoreGauges) -> Iterator[Metric]:
    yield _gauge("lienthong_dossiers_open",
                 "Open dossiers (in progress: processing, or awaiting the applicant's supplement or financial "
                 "obligation).", ["sector", "level", "status"], g.open)
    yield _gauge("lienthong_dossiers_overdue",
                 "Open dossiers past their due (flagged by the workflow, or processing with due_at before now).",
                 ["sector", "level"], g.overdue)
    yield _gauge("lienthong_dossiers_awaiting_supplement",
                 "Dossiers waiting for the applicant to supplement documents (clock stopped).",
                 ["sector"], g.awaiting_supplement)
    yield _gauge("lienthong_oldest_overdue_age_seconds",
                 "Seconds since the earliest due of the sector's overdue dossiers passed; 0 when none is overdue.",
                 ["sector"], g.oldest_overdue_age)
    yield _gauge("lienthong_procedure_dossiers_open", "Open dossiers by procedure code.",
                 ["sector", "procedure"], g.procedure_open)
    yield _gauge("lienthong_procedure_dossiers_overdue", "Overdue open dossiers by procedure code.",
                 ["sector", "procedure"], g.procedure_overdue)
    yield _gauge("lienthong_steps_open", "Steps held by an agency (assigned, not finished).",
                 ["sector", "agency"], g.steps_open)
    yield _gauge("lienthong_steps_overdue",
                 "Steps held by an agency past their due (flagged, or due_at before now while processing).",
                 ["sector", "agency"], g.steps_overdue)
    yield _gauge("lienthong_dossiers_abandoned",
                 "Dossiers the projection had open whose workflow Temporal reports terminated, timed out, failed, "
                 "cancelled or unknown (marked by `lienthong dossiers orphans --mark`); not in the open families.",
                 ["sector"], g.abandoned)
    yield _gauge("lienthong_dossiers_without_due",
                 "Open dossiers without a computed due whose row was last written more than 5 minutes ago.",
                 ["sector"], g.without_due)
    yield _gauge("lienthong_dossiers_awaiting_applicant",
                 "Dossiers waiting for the applicant: to supplement documents (portal status 5, reason=supplement) "
                 "or to pay a financial obligation (6, reason=obligation).",
                 ["sector", "level", "reason"], g.awaiting_applicant)
    yield _gauge("lienthong_dossier_applicant_wait_oldest_seconds",
                 "Seconds since the longest current wait for the applicant began (the latest supplement or "
                 "obligation request of the dossier); 0 when none waits.",
                 ["sector", "reason"], g.applicant_wait_oldest)
    yield _gauge("lienthong_dossiers_withdrawal_requested",
                 "Dossiers showing portal status 7 (the applicant asked to withdraw) and not stopped yet; the "
                 "workflow stops them in the same write, so normally 0.", ["sector"], g.withdrawal_requested)
    yield _gauge("lienthong_dossiers_awaiting_receipt",
                 "Online dossiers submitted and not yet received (or refused) by a desk (portal status 1), by the "
                 "desk they are addressed to.", ["desk"], g.awaiting_receipt)
    yield _gauge("lienthong_dossier_receipt_wait_oldest_seconds",
                 "Seconds since the earliest submission among the desk's online dossiers waiting for receipt; 0 "
                 "when none waits.", ["desk"], g.receipt_wait_oldest)
    yield _gauge("lienthong_dossier_receipt_wait_oldest_working_seconds",
                 "The same wait in working time, in the dossier's calendar (8 working hours = one working day of "
                 "vn-gov).", ["desk"], g.receipt_wait_oldest_working)
    yield _gauge("lienthong_portal_sync_pending",
                 "Changes (status changes, timeline steps) waiting to be sent to the National Public Service Portal.",
                 [], {(): g.portal_pending})
    yield _gauge("lienthong_portal_sync_lag_seconds",
                 "Seconds the oldest change waiting for the National Public Service Portal has waited since it was "
                 "recorded; 0 when none waits.", [], {(): g.portal_lag})
    yield _gauge("lienthong_portal_sync_parked",
                 "Changes the National Public Service Portal refused for good (a 4xx about the change) that no later "
                 "change it accepted supersedes: `lienthong portal parked`.", [], {(): g.portal_parked})


def _gauge(name: str, documentation: str, labels: list[str], values: dict) -> GaugeMetricFamily:  # type: ignore[type-arg]
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


@dataclass(frozen=True)
class StoreRead:
    """The outcome of one read of the store."""

    gauges: StoreGauges | None  # None: the database could not be read
    seconds: float  # how long the read took


class StoreCollector(Collector):
    """Registered on the exporter's registry; each `collect` is one scrape.

    A scrape reads the store itself unless the last read took more than ``budget``
    seconds; then it serves that read and starts the next one in the background (module
    docstring). ``budget=0`` always serves the previous read (after the first);
    ``budget=math.inf`` always reads during the scrape.
    """

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime] | None = None,
                 budget: float = READ_BUDGET_SECONDS) -> None:
        self._sessions = sessions
        self._clock = clock or (lambda: datetime.now(UTC))
        self._budget = budget
        self._errors = 0
        self._lock = threading.Lock()
        self._last: StoreRead | None = None
        self._idle = threading.Event()  # set while no background read runs
        self._idle.set()

    def describe(self) -> Iterable[Metric]:
        return []  # nothing at registration: the database is read at scrape time only

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            last = self._last
            if last is not None and last.gauges is not None and last.seconds > self._budget:
                if self._idle.is_set():  # one background read at a time
                    self._idle.clear()
                    threading.Thread(target=self._read_in_background, name="lienthong-store-read",
                                     daemon=True).start()
            else:
                last = None  # nothing read yet, a failed read, or a quick one: read now
        read = last or self._read()
        if read.gauges is not None:
            yield from gauge_families(read.gauges)
        up = GaugeMetricFamily("lienthong_exporter_store_up",
                               "1 if the read of the projection database served by this scrape succeeded, else 0.")
        up.add_metric([], 1 if read.gauges is not None else 0)
        yield up
        duration = GaugeMetricFamily("lienthong_exporter_collect_duration_seconds",
                                     "Seconds the store read served by this scrape took.")
        duration.add_metric([], read.seconds)
        yield duration
        if read.gauges is not None:
            age = GaugeMetricFamily("lienthong_exporter_store_age_seconds",
                                    "How old the store families served are: seconds since the instant they were "
                                    "read as of (about the read's duration when read during this scrape; about a "
                                    "scrape interval once reads are slow and run in the background).")
            age.add_metric([], max(0.0, (self._clock() - read.gauges.at).total_seconds()))
            yield age
        errors = CounterMetricFamily("lienthong_exporter_collect_errors",
                                     "Store reads that failed.")
        errors.add_metric([], self._errors)
        yield errors

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for a background read in progress, if any; False if it is still running
        after ``timeout`` seconds. (For tests and the benchmark.)"""
        return self._idle.wait(timeout)

    def _read(self) -> StoreRead:
        started = time.perf_counter()
        gauges: StoreGauges | None = None
        try:
            with self._sessions() as session:
                consistent_read(session)
                gauges = read_gauges(session, self._clock())
        except SQLAlchemyError as err:
            with self._lock:
                self._errors += 1
            log.warning("store_unreadable", error=" ".join(str(getattr(err, "orig", None) or err).split())[:500])
        read = StoreRead(gauges, time.perf_counter() - started)
        with self._lock:
            self._last = read
        return read

    def _read_in_background(self) -> None:
        started = time.perf_counter()
        try:
            self._read()
        except Exception:  # a bug, not the database: served as a failed read, then read again during a scrape
            log.exception("store_read_failed")
            with self._lock:
                self._errors += 1
                self._last = StoreRead(None, time.perf_counter() - started)
        finally:
            self._idle.set()


def consistent_read(session: Session) -> None:
    """Set up a session for a read (before its queries). On PostgreSQL every family comes
    from one snapshot (one read-only transaction), planned without JIT compilation; a
    SQLite reader sees one snapshot per statement, which is a few milliseconds apart."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
        session.execute(text("SET LOCAL jit = off"))


def by_label(values: dict[tuple[str, ...], int], index: int) -> dict[str, int]:
    """Sum a tuple-keyed family over every label but one (handy in tests and the CLI)."""
    out: dict[str, int] = defaultdict(int)
    for key, value in values.items():
        out[key[index]] += value
    return dict(out)
