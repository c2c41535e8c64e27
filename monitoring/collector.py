"""The exporter's custom collector: current-state gauges computed from the projection
database at scrape time, so they are right across restarts and however many workers run.

Each scrape runs three grouped queries (never a loop over dossiers), plus two over the
small registries to report zeros for every known sector and level:

=====  ==========================================================  ===============================================
query  families                                                    index it is meant to use
=====  ==========================================================  ===============================================
open   ``lienthong_dossiers_open{sector,level,status}``,            ``ix_dossiers_status_sector_level`` (covering:
       ``lienthong_dossiers_awaiting_supplement{sector}``           an index-only scan)
late   ``lienthong_dossiers_overdue{sector,level}``,                ``ix_dossiers_status_sector_level`` for the open
       ``lienthong_oldest_overdue_age_seconds{sector}``,            ones; due, flag and procedure are read from the
       ``lienthong_procedure_dossiers_open{sector,procedure}``,     rows (one pass for the four families)
       ``lienthong_procedure_dossiers_overdue{sector,procedure}``
steps  ``lienthong_steps_open{sector,agency}``,                     ``ix_dossier_steps_agency_status`` /
       ``lienthong_steps_overdue{sector,agency}``                   ``ix_dossier_steps_status_due_at``, ``pk_dossiers``
=====  ==========================================================  ===============================================

**Overdue**, at the scrape instant *now* (see monitoring/README.md):

* a dossier is overdue when it is open (``processing`` or ``awaiting_supplement``) and
  either its ``overdue`` flag is set (the workflow saw a due pass: it stays set, also
  after an extension or while the applicant supplements) or it is ``processing`` and
  its current due (``due_at``, an extension's new appointment included) is before *now*
  (covers the seconds before the workflow records it, and workers that are down).
  While the applicant supplements, the clock is stopped: a due passing then is not late;
* a step is overdue when it is ``assigned`` (held by an agency) and either its flag is
  set, or its dossier is ``processing`` and the step's ``due_at`` is before *now*;
* the oldest overdue age of a sector is *now* minus the earliest due (legal or current)
  among its overdue dossiers, 0 when it has none.

A database that cannot be read makes ``lienthong_exporter_store_up`` 0 and leaves the
store families out of that scrape (the exporter itself stays up: an unreachable
database is not the same alert as a dead exporter).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from store.models import DefinitionRow, DossierRow, DossierStepRow, SectorRow
from workflows.payloads import DossierStatus, StepStatus

log = structlog.get_logger("lienthong.exporter")

PROCESSING = DossierStatus.PROCESSING.value
AWAITING = DossierStatus.AWAITING_SUPPLEMENT.value
OPEN_STATUSES = (PROCESSING, AWAITING)


def dossier_overdue(now: datetime) -> ColumnElement[bool]:
    """SQL: an open dossier that is overdue at ``now`` (module docstring)."""
    return and_(
        DossierRow.status.in_(OPEN_STATUSES),
        or_(DossierRow.overdue.is_(True), and_(DossierRow.status == PROCESSING, DossierRow.due_at < now)),
    )


def step_overdue(now: datetime) -> ColumnElement[bool]:
    """SQL: an assigned step (joined with its dossier) that is overdue at ``now``."""
    return and_(
        DossierStepRow.status == StepStatus.ASSIGNED.value,
        or_(DossierStepRow.overdue.is_(True),
            and_(DossierRow.status == PROCESSING, DossierStepRow.due_at < now)),
    )


@dataclass
class StoreGauges:
    """One scrape's numbers, keyed by label tuples."""

    at: datetime
    open: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (sector, level, status)
    overdue: dict[tuple[str, str], int] = field(default_factory=dict)  # (sector, level)
    oldest_overdue_age: dict[str, float] = field(default_factory=dict)  # sector -> seconds
    awaiting_supplement: dict[str, int] = field(default_factory=dict)  # sector
    procedure_open: dict[tuple[str, str], int] = field(default_factory=dict)  # (sector, procedure)
    procedure_overdue: dict[tuple[str, str], int] = field(default_factory=dict)
    steps_open: dict[tuple[str, str], int] = field(default_factory=dict)  # (sector, agency)
    steps_overdue: dict[tuple[str, str], int] = field(default_factory=dict)


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
    for sector in sectors:
        g.awaiting_supplement[sector] = 0
        g.oldest_overdue_age[sector] = 0.0

    open_rows = session.execute(
        select(DossierRow.sector, DossierRow.level, DossierRow.status, func.count())
        .where(DossierRow.status.in_(OPEN_STATUSES))
        .group_by(DossierRow.status, DossierRow.sector, DossierRow.level)
    ).tuples()
    for sector, level, status, count in open_rows:
        g.open[(sector, level, status)] = count
        g.overdue.setdefault((sector, level), 0)
        if status == AWAITING:
            g.awaiting_supplement[sector] = g.awaiting_supplement.get(sector, 0) + count

    # One pass over the open dossiers for four families: overdue by (sector, level), the
    # oldest overdue by sector, open and overdue by procedure.
    late = dossier_overdue(now)
    late_rows = session.execute(
        select(DossierRow.sector, DossierRow.level, DossierRow.procedure_code, func.count(),
               func.sum(case((late, 1), else_=0)),
               func.min(case((late, DossierRow.due_at))), func.min(case((late, DossierRow.original_due_at))))
        .where(DossierRow.status.in_(OPEN_STATUSES))
        .group_by(DossierRow.sector, DossierRow.level, DossierRow.procedure_code)
    ).tuples()
    for sector, level, procedure, count, overdue, first_due, first_legal_due in late_rows:
        overdue = int(overdue or 0)
        g.procedure_open[(sector, procedure)] = g.procedure_open.get((sector, procedure), 0) + count
        g.procedure_overdue[(sector, procedure)] = g.procedure_overdue.get((sector, procedure), 0) + overdue
        g.overdue[(sector, level)] = g.overdue.get((sector, level), 0) + overdue
        earliest = min((d for d in (first_due, first_legal_due) if d is not None), default=None)
        if earliest is not None:
            age = max(0.0, (now - earliest).total_seconds())
            g.oldest_overdue_age[sector] = max(g.oldest_overdue_age.get(sector, 0.0), age)

    step_late = case((step_overdue(now), 1), else_=0)
    step_rows = session.execute(
        select(DossierRow.sector, DossierStepRow.agency, func.count(), func.sum(step_late))
        .select_from(DossierStepRow)
        .join(DossierRow, DossierRow.id == DossierStepRow.dossier_id)
        .where(DossierStepRow.status == StepStatus.ASSIGNED.value, DossierStepRow.agency.is_not(None))
        .group_by(DossierRow.sector, DossierStepRow.agency)
    ).tuples()
    for sector, agency, count, overdue in step_rows:
        g.steps_open[(sector, agency)] = count
        g.steps_overdue[(sector, agency)] = int(overdue or 0)
    return g


def gauge_families(g: StoreGauges) -> Iterator[Metric]:
    yield _gauge("lienthong_dossiers_open", "Open dossiers (processing or awaiting the applicant's supplement).",
                 ["sector", "level", "status"], g.open)
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


def _gauge(name: str, documentation: str, labels: list[str], values: dict) -> GaugeMetricFamily:  # type: ignore[type-arg]
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


class StoreCollector(Collector):
    """Registered on the exporter's registry; each `collect` is one scrape."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime] | None = None) -> None:
        self._sessions = sessions
        self._clock = clock or (lambda: datetime.now(UTC))
        self._errors = 0

    def describe(self) -> Iterable[Metric]:
        return []  # nothing at registration: the database is read at scrape time only

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        gauges: StoreGauges | None = None
        try:
            with self._sessions() as session:
                _consistent_read(session)
                gauges = read_gauges(session, self._clock())
        except SQLAlchemyError as err:
            self._errors += 1
            log.warning("store_unreadable", error=" ".join(str(getattr(err, "orig", None) or err).split())[:500])
        elapsed = time.perf_counter() - started
        if gauges is not None:
            yield from gauge_families(gauges)
        up = GaugeMetricFamily("lienthong_exporter_store_up",
                               "1 if the last scrape could read the projection database, else 0.")
        up.add_metric([], 1 if gauges is not None else 0)
        yield up
        duration = GaugeMetricFamily("lienthong_exporter_collect_duration_seconds",
                                     "Seconds the store queries of this scrape took.")
        duration.add_metric([], elapsed)
        yield duration
        errors = CounterMetricFamily("lienthong_exporter_collect_errors",
                                     "Scrapes whose store queries failed.")
        errors.add_metric([], self._errors)
        yield errors


def _consistent_read(session: Session) -> None:
    """On PostgreSQL every family comes from one snapshot (one read-only transaction);
    a SQLite reader sees one snapshot per statement, which is a few milliseconds apart."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})


def by_label(values: dict[tuple[str, ...], int], index: int) -> dict[str, int]:
    """Sum a tuple-keyed family over every label but one (handy in tests and the CLI)."""
    out: dict[str, int] = defaultdict(int)
    for key, value in values.items():
        out[key[index]] += value
    return dict(out)
