"""The collector's queries (rewritten for the partial indexes of migration 0003) give the
same numbers as the queries they replaced, on a mixed store, on SQLite and PostgreSQL;
and the databases can use those indexes for them. The families added since (issue 14:
the applicant's turns, withdrawals, online dossiers waiting for receipt) are checked
against the same numbers counted row by row."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import and_, case, event, func, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from definitions.calendar import UnknownCalendarError, load_calendar
from monitoring.collector import (
    AWAITING,
    NO_DESK,
    NO_DUE_AFTER,
    OPEN_STATUSES,
    PROCESSING,
    REASONS,
    StoreGauges,
    read_gauges,
)
from store import projection
from store.models import ABANDONED, AgencyRow, DefinitionRow, DossierRow, DossierStepRow, SectorRow
from tests.monitoring.builders import NOW
from workflows.payloads import PORTAL_STATUS, DossierState, DossierStatus, Note, PortalStatus, StepState, StepStatus

# ----------------------------------------------------------------------------- the queries before (873f146)


def read_gauges_before(session: Session, now: datetime) -> StoreGauges:
    """monitoring/collector.py's read_gauges as it was before migration 0003, verbatim but
    for the two SQL helpers inlined: the reference the new queries must agree with."""
    def dossier_overdue(now: datetime):  # type: ignore[no-untyped-def]
        return and_(
            DossierRow.status.in_(OPEN_STATUSES),
            or_(DossierRow.overdue.is_(True), and_(DossierRow.status == PROCESSING, DossierRow.due_at < now)),
        )

    def step_overdue(now: datetime):  # type: ignore[no-untyped-def]
        return and_(
            DossierStepRow.status == StepStatus.ASSIGNED.value,
            or_(DossierStepRow.overdue.is_(True),
                and_(DossierRow.status == PROCESSING, DossierStepRow.due_at < now)),
        )

    g = StoreGauges(at=now)
    sector_levels = set(session.execute(select(DefinitionRow.sector, DefinitionRow.level).distinct()).tuples())
    sectors = set(session.scalars(select(SectorRow.code))) | {sector for sector, _ in sector_levels}
    for sector, level in sector_levels:
        g.overdue[(sector, level)] = 0
        for status in OPEN_STATUSES:
            g.open[(sector, level, status)] = 0
    for sector in sectors:
        g.awaiting_supplement[sector] = 0
        g.oldest_overdue_age[sector] = 0.0
        g.abandoned[sector] = 0
        g.without_due[sector] = 0

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

    # The stuck families (migration 0005), row by row.
    for sector, status, due_at, updated_at in session.execute(
            select(DossierRow.sector, DossierRow.status, DossierRow.due_at, DossierRow.updated_at)).tuples():
        if status == ABANDONED:
            g.abandoned[sector] = g.abandoned.get(sector, 0) + 1
        elif status in OPEN_STATUSES and due_at is None and updated_at < now - NO_DUE_AFTER:
            g.without_due[sector] = g.without_due.get(sector, 0) + 1
    _issue_14_row_by_row(session, now, g, sector_levels, sectors)
    return g


def _issue_14_row_by_row(session: Session, now: datetime, g: StoreGauges, sector_levels: set[tuple[str, str]],
                         sectors: set[str]) -> None:
    """The families of issue 14, counted row by row from every dossier."""
    for sector, level in sector_levels:
        for reason in REASONS.values():
            g.awaiting_applicant[(sector, level, reason)] = 0
    for sector in sectors:
        g.withdrawal_requested[sector] = 0
        for reason in REASONS.values():
            g.applicant_wait_oldest[(sector, reason)] = 0.0
    for desk in session.scalars(select(AgencyRow.code).where(AgencyRow.receives_dossiers.is_(True),
                                                             AgencyRow.retired_at.is_(None))):
        g.awaiting_receipt[desk] = 0
        g.receipt_wait_oldest[desk] = g.receipt_wait_oldest_working[desk] = 0.0
    rows = session.execute(select(DossierRow.sector, DossierRow.level, DossierRow.status, DossierRow.portal_status,
                                  DossierRow.received_by, DossierRow.calendar, DossierRow.received_at,
                                  DossierRow.awaiting_since)).tuples()
    for sector, level, status, portal, desk, calendar, received_at, since in rows:
        if status in REASONS:
            key = (sector, level, REASONS[status])
            g.awaiting_applicant[key] = g.awaiting_applicant.get(key, 0) + 1
            if since is not None:
                turn = (sector, REASONS[status])
                g.applicant_wait_oldest[turn] = max(g.applicant_wait_oldest.get(turn, 0.0),
                                                    max(0.0, (now - since).total_seconds()))
        if portal == PortalStatus.WITHDRAWAL_REQUESTED:
            g.withdrawal_requested[sector] = g.withdrawal_requested.get(sector, 0) + 1
        if status == DossierStatus.SUBMITTED:
            desk = desk or NO_DESK
            wall = max(0.0, (now - received_at).total_seconds())
            try:
                working = max(0.0, load_calendar(calendar).elapsed(received_at, now).total_seconds())
            except UnknownCalendarError:
                working = wall
            g.awaiting_receipt[desk] = g.awaiting_receipt.get(desk, 0) + 1
            g.receipt_wait_oldest[desk] = max(g.receipt_wait_oldest.get(desk, 0.0), wall)
            g.receipt_wait_oldest_working[desk] = max(g.receipt_wait_oldest_working.get(desk, 0.0), working)


# ----------------------------------------------------------------------------- a mixed store

# Shipped sector/level pairs, plus a sector no definition or registry knows.
PLACES = [("G13-TN01", "xa"), ("G13-TN01", "tinh"), ("G15-TP07", "xa"), ("G05-KD10", "tinh"), ("X99-NONE", "xa")]
PROCEDURES = ["1.012756", "1.000001", "2.000722", "3.000722"]
AGENCIES = ["vpdk-tinh", "bpmc-xa-xa-tan-lap", "thue-co-so", "so-nnmt", "ubnd-xa-xa-tan-lap"]
STATUSES = [DossierStatus.PROCESSING] * 5 + [DossierStatus.AWAITING_SUPPLEMENT] * 2 + [
    DossierStatus.COMPLETED, DossierStatus.REJECTED] + [  # issue 14's
    DossierStatus.SUBMITTED, DossierStatus.AWAITING_OBLIGATION, DossierStatus.NOT_RECEIVED, DossierStatus.WITHDRAWN,
    DossierStatus.RESULT_READY]
DESKS = [None, "bpmc-xa-xa-tan-lap", "bpmc-tinh", "bpmc-xa-da-giai-the"]  # the last: a desk the registry lacks
CALENDARS = ["vn-gov", "vn-gov", "continuous", "khong-co"]  # the last cannot be loaded: wall-clock time
REQUESTED = {DossierStatus.AWAITING_SUPPLEMENT: "supplement_requested",
             DossierStatus.AWAITING_OBLIGATION: "obligation_requested"}


def _instant(rng: random.Random) -> datetime | None:
    """Around NOW: passed, coming, a few exactly at NOW, and sometimes none."""
    roll = rng.random()
    if roll < 0.08:
        return None
    if roll < 0.12:
        return NOW
    return NOW + timedelta(hours=rng.uniform(-24 * 12, 24 * 12))


def _step(rng: random.Random, n: int) -> StepState:
    status = rng.choice([StepStatus.ASSIGNED, StepStatus.ASSIGNED, StepStatus.PENDING, StepStatus.COMPLETED,
                         StepStatus.SKIPPED, StepStatus.REJECTED])
    agency = None if status == StepStatus.PENDING or rng.random() < 0.1 else rng.choice(AGENCIES)
    due = _instant(rng)
    return StepState(id=f"step-{n}", name=f"step {n}", deadline="1d", agency=agency, status=status,
                     assigned_at=NOW - timedelta(days=1) if agency else None, due_at=due, original_due_at=due,
                     overdue=rng.random() < 0.2)


def mixed_store(rng: random.Random, count: int) -> list[DossierState]:
    """Every combination the gauges tell apart, at random: open and finished dossiers,
    flagged or not, dues passed / coming / at NOW / missing, legal dues before or after
    the current one, held steps with and without an agency, pending and finished steps,
    held steps left in finished dossiers (which the workflow does not leave, but the
    queries counted), dossiers of sectors nobody registered."""
    states = []
    for n in range(count):
        sector, level = rng.choice(PLACES)
        status = rng.choice(STATUSES)
        due = _instant(rng)
        legal = due if rng.random() < 0.5 or due is None else due + timedelta(hours=rng.choice([-48, -3, 5, 72]))
        finished = status in (DossierStatus.COMPLETED, DossierStatus.REJECTED)
        # Online dossiers submitted between 10 days and a minute ago; the others received 20 days ago.
        received = NOW - timedelta(minutes=rng.uniform(1, 60 * 24 * 10)) if status == DossierStatus.SUBMITTED \
            else NOW - timedelta(days=20)
        # The applicant's turns: requested (and maybe asked again, of either kind) at random; some without a note.
        notes = [Note(at=NOW - timedelta(hours=rng.uniform(1, 24 * 40)), kind=kind, text="x")
                 for kind in rng.sample(["supplement_requested", "obligation_requested", "resubmitted"], 2)]
        if status in REQUESTED and rng.random() < 0.8:
            notes.append(Note(at=NOW - timedelta(hours=rng.uniform(0, 24 * 30)), kind=REQUESTED[status], text="y"))
        portal = PORTAL_STATUS[status]
        if status == DossierStatus.PROCESSING and rng.random() < 0.1:
            portal = PortalStatus.WITHDRAWAL_REQUESTED  # a withdrawal that did not stop (the workflow never leaves one)
        states.append(DossierState(
            dossier_id=f"HS-MIX-{n:04d}", procedure_code=rng.choice(PROCEDURES), procedure_version=1,
            procedure_name="Thủ tục", content_hash="0" * 64, sector=sector, level=level,
            calendar=rng.choice(CALENDARS), channel="online", status=status, portal_status=portal,
            received_at=received, received_by=rng.choice(DESKS), clock_started_at=NOW - timedelta(days=20),
            due_at=due, original_due_at=legal, overdue=rng.random() < 0.25,
            completed_at=NOW - timedelta(hours=1) if finished else None, verdict="late" if finished else None,
            paused_at=NOW - timedelta(days=rng.uniform(0, 9)) if status in REQUESTED and rng.random() < 0.7 else None,
            notes=notes, steps=[_step(rng, k) for k in range(rng.randint(0, 4))],
        ))
    return states


def _project(sessions: sessionmaker[Session], states: list[DossierState]) -> None:
    with sessions.begin() as session:
        for state in states:
            projection.apply_state(session, state, 1, now=NOW)


def _held_in_finished(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(
            select(func.count()).select_from(DossierStepRow)
            .join(DossierRow, DossierRow.id == DossierStepRow.dossier_id)
            .where(DossierStepRow.status == "assigned", DossierStepRow.agency.is_not(None),
                   DossierRow.status.not_in(OPEN_STATUSES))) or 0


INSTANTS = [NOW, NOW - timedelta(days=3), NOW + timedelta(hours=7), NOW + timedelta(days=30)]


def test_the_gauges_are_those_of_the_previous_queries_on_a_mixed_store(store: sessionmaker[Session]) -> None:
    _project(store, mixed_store(random.Random(11), 400))
    assert _held_in_finished(store) > 0  # the second half of the steps query has work
    for now in INSTANTS:
        with store() as session:
            before, after = read_gauges_before(session, now), read_gauges(session, now)
        assert after == before, now
    # Not vacuous: every family has numbers, overdue ones included.
    assert sum(before.overdue.values()) and sum(before.steps_overdue.values())
    assert sum(before.procedure_overdue.values()) and any(before.oldest_overdue_age.values())
    assert {reason for (_, _, reason), count in before.awaiting_applicant.items() if count} == set(REASONS.values())
    assert {reason for (_, reason), age in before.applicant_wait_oldest.items() if age} == set(REASONS.values())
    assert sum(before.withdrawal_requested.values()) and NO_DESK in before.awaiting_receipt
    assert "bpmc-xa-da-giai-the" in before.awaiting_receipt  # addressed to a desk the registry does not list
    assert any(before.receipt_wait_oldest_working[d] < before.receipt_wait_oldest[d] for d in before.awaiting_receipt)


def test_the_same_without_held_steps_in_finished_dossiers(store: sessionmaker[Session]) -> None:
    """The usual store: the second half of the steps query is skipped, same numbers."""
    states = [s for s in mixed_store(random.Random(12), 300)
              if not (s.status not in OPEN_STATUSES and any(st.status == StepStatus.ASSIGNED and st.agency
                                                            for st in s.steps))]
    _project(store, states)
    assert _held_in_finished(store) == 0
    for now in INSTANTS:
        with store() as session:
            assert read_gauges(session, now) == read_gauges_before(session, now), now


def test_the_same_on_an_empty_store(store: sessionmaker[Session]) -> None:
    with store() as session:
        assert read_gauges(session, NOW) == read_gauges_before(session, NOW)


def test_a_held_step_of_a_finished_dossier_counts_under_its_own_sector(store: sessionmaker[Session]) -> None:
    def state(dossier_id: str, sector: str, status: DossierStatus, step_due: timedelta) -> DossierState:
        step = StepState(id="tham-dinh", name="x", deadline="1d", agency="vpdk-tinh", status=StepStatus.ASSIGNED,
                         due_at=NOW + step_due)
        return DossierState(dossier_id=dossier_id, procedure_code="1.012756", procedure_version=1,
                            procedure_name="x", content_hash="0" * 64, sector=sector, level="xa",
                            calendar="vn-gov", channel="online", status=status, portal_status=PORTAL_STATUS[status],
                            received_at=NOW - timedelta(days=2), due_at=NOW + timedelta(days=1), steps=[step])

    _project(store, [state("OPEN", "G13-TN01", DossierStatus.PROCESSING, -timedelta(hours=1)),
                     state("DONE", "G15-TP07", DossierStatus.COMPLETED, -timedelta(hours=1))])
    with store() as session:
        g = read_gauges(session, NOW)
    # The finished dossier's step: held, but its due passing is not late (the dossier is not processing).
    assert g.steps_open == {("G13-TN01", "vpdk-tinh"): 1, ("G15-TP07", "vpdk-tinh"): 1}
    assert g.steps_overdue == {("G13-TN01", "vpdk-tinh"): 1, ("G15-TP07", "vpdk-tinh"): 0}


# ----------------------------------------------------------------------------- the indexes


def _scrape_statements(sessions: sessionmaker[Session]) -> list[tuple[str, object]]:
    engine = sessions.kw["bind"]
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with sessions() as session:
            read_gauges(session, NOW)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return captured[3:]  # after the three registry look-ups


def _scans(plan: str) -> list[tuple[str, str]]:
    """(table or alias, index) of each index scan in a plan of either database."""
    postgresql = re.findall(r"Scan using (\w+) on (\w+)(?: (\w+))?", plan)
    sqlite = re.findall(r"(?:SCAN|SEARCH) (\w+) USING (?:COVERING )?INDEX (\w+)", plan)
    # PostgreSQL names a table's second use "dossier_steps_1": the table, not an alias of ours.
    return [(alias if alias and not alias.startswith(table) else table, index)
            for index, table, alias in postgresql] + sqlite


@pytest.mark.parametrize("statistics", [False, True])
def test_the_queries_read_the_partial_indexes(store: sessionmaker[Session], statistics: bool) -> None:
    """The statuses are written into the SQL, so each database can prove that a query
    only wants rows of the partial indexes, and reads those. PostgreSQL is asked with
    whole-table scans ruled out (at this size it would rightly prefer them), so a query
    its partial indexes did not fit would show a scan of a primary key instead. SQLite is
    asked as it is, with and without statistics (nothing runs ANALYZE on a store that
    was empty when migrated): without, it looks each held step's dossier up by primary
    key rather than in ix_dossiers_open_by_id (monitoring/BENCHMARK.md has the cost)."""
    _project(store, mixed_store(random.Random(13), 200))
    engine = store.kw["bind"]
    postgresql = engine.dialect.name == "postgresql"
    if statistics:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE" if postgresql else "ANALYZE"))
    plans = []
    with engine.connect() as connection:
        if postgresql:
            for setting in ("enable_seqscan", "enable_bitmapscan"):
                connection.execute(text(f"SET {setting} = off"))
        for statement, parameters in _scrape_statements(store):
            explain = "EXPLAIN (COSTS OFF) " if postgresql else "EXPLAIN QUERY PLAN "
            rows = connection.exec_driver_sql(explain + statement, parameters)  # type: ignore[arg-type]
            plans.append("\n".join(" ".join(str(c) for c in row if c is not None) for row in rows))
    (dossiers, steps, finished, abandoned, no_due, applicant, withdrawal, receipt, portal_pending,
     portal_parked) = (_scans(plan) for plan in plans)
    # The National Portal's outbox (migration 0008): what waits, and what was parked.
    assert portal_pending == [("portal_outbox", "ix_portal_outbox_pending_created")], plans[8]
    assert ("portal_outbox", "ix_portal_outbox_parked") in portal_parked, plans[9]
    assert dossiers == [("dossiers", "ix_dossiers_open")], plans[0]
    by_primary_key = not postgresql and not statistics
    open_dossier = "sqlite_autoindex_dossiers_1" if by_primary_key else "ix_dossiers_open_by_id"
    assert sorted(steps) == [("dossier_steps", "ix_dossier_steps_held"), ("dossiers", open_dossier)], plans[1]
    # Held steps of finished dossiers (this store has some): the held steps' index too.
    assert ("dossier_steps", "ix_dossier_steps_held") in finished, plans[2]
    # The stuck families (migration 0005): each from its partial index. SQLite without
    # statistics looks the rows without a due up in ix_dossiers_due_at (due_at IS NULL):
    # the same few rows.
    assert abandoned == [("dossiers", "ix_dossiers_abandoned")], plans[3]
    assert no_due == [("dossiers", "ix_dossiers_due_at" if by_primary_key else "ix_dossiers_without_due")], plans[4]
    # Issue 14 (migrations 0007 and 0011): each from its partial index.
    assert applicant == [("dossiers", "ix_dossiers_awaiting_applicant")], plans[5]
    assert withdrawal == [("dossiers", "ix_dossiers_withdrawal_requested")], plans[6]
    assert receipt == [("dossiers", "ix_dossiers_awaiting_receipt")], plans[7]


def test_without_held_steps_in_finished_dossiers_the_third_query_reads_nothing(store: sessionmaker[Session]) -> None:
    _project(store, [s for s in mixed_store(random.Random(14), 100) if s.status in OPEN_STATUSES])
    engine = store.kw["bind"]
    statements = _scrape_statements(store)
    assert len(statements) == 10  # the two stuck families', issue 14's three and the two portal queries after the third
    statement, parameters = statements[2]
    assert re.search(r"\bWHERE (false|0 = 1) GROUP BY", statement), statement
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement, parameters)
            text_plan = "\n".join(row[0] for row in plan)
        assert "One-Time Filter: false" in text_plan and "Scan" not in text_plan, text_plan  # no table at all


def test_now_is_exact_at_the_instant(store: sessionmaker[Session]) -> None:
    """A due exactly at the read's instant is not passed yet (strictly before), as before."""
    due = NOW
    step = StepState(id="s", name="s", deadline="1d", agency="vpdk-tinh", status=StepStatus.ASSIGNED, due_at=due)
    _project(store, [DossierState(dossier_id="AT", procedure_code="1.012756", procedure_version=1,
                                  procedure_name="x", content_hash="0" * 64, sector="G13-TN01", level="xa",
                                  calendar="vn-gov", channel="online", received_at=NOW - timedelta(days=1),
                                  due_at=due, original_due_at=due, steps=[step])])
    with store() as session:
        g, before = read_gauges(session, NOW), read_gauges_before(session, NOW)
    assert g == before
    assert g.overdue[("G13-TN01", "xa")] == 0 and g.steps_overdue[("G13-TN01", "vpdk-tinh")] == 0
