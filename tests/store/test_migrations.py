"""The schema comes from the migrations, and the migrations match the models."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Table, func, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import identity, projection
from store.db import make_engine, make_session_factory
from store.migrate import alembic_config, current, downgrade, head, main, upgrade
from store.models import DossierIdRow, DossierRow, DossierStepRow, SectorRow, metadata
from tests.conftest import REPO
from tests.store.builders import make_state
from workflows.payloads import DossierState, DossierStatus, Note

TABLES = {
    "definitions", "agencies", "sectors", "dossiers", "dossier_steps",
    "dossier_events", "inbox_items", "webhook_deliveries", "dossier_ids",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_then_again_is_a_no_op(db_url: str) -> None:
    assert current(db_url) is None
    assert upgrade(db_url) == head() is not None
    assert TABLES <= _tables(db_url)

    engine = make_engine(db_url)
    with make_session_factory(engine).begin() as session:
        session.add(SectorRow(code="G13-TN01", name="Đất đai"))
    assert upgrade(db_url) == head()  # nothing to do, nothing lost
    with make_session_factory(engine)() as session:
        assert session.scalars(select(SectorRow.code)).all() == ["G13-TN01"]
    engine.dispose()


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_empty_and_up_again(db_url: str) -> None:
    upgrade(db_url)
    assert downgrade(db_url, "base") is None
    assert not TABLES & _tables(db_url)
    assert upgrade(db_url) == head()


def test_processes_starting_together_migrate_once(db_url: str) -> None:
    # Separate processes, as in production: alembic's context is per process, not per thread.
    script = "import sys; from store.migrate import upgrade; print(upgrade(sys.argv[1]))"
    starts = [
        subprocess.Popen([sys.executable, "-c", script, db_url], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in starts]
    assert [(code, out.strip()) for code, out, _ in outcomes] == [(0, head())] * 4, outcomes
    assert current(db_url) == head()


def test_check_constraints_and_cascades_match_the_models(db_url: str) -> None:
    # compare_metadata does not look at CHECK constraints or ON DELETE; look here.
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        inspector = inspect(engine)
        for table in metadata.sorted_tables:
            reflected = {c["name"] for c in inspector.get_check_constraints(table.name)}
            declared = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
            assert reflected == declared, table.name
            cascades = {fk["name"]: fk["options"].get("ondelete") for fk in inspector.get_foreign_keys(table.name)}
            assert cascades == {fk.name: fk.ondelete for fk in table.foreign_key_constraints}, table.name
    finally:
        engine.dispose()


def test_command_line(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["current", "--url", db_url]) == 0
    assert main(["upgrade", "--url", db_url]) == 0
    assert capsys.readouterr().out.splitlines() == ["(empty)", head()]


# The monitoring indexes of 0003 (monitoring/collector.py), and the ones of 0001 they replace.
INDEXES_0003 = {
    "ix_dossiers_open": ("dossiers", ["sector", "level", "status", "procedure_code", "overdue", "due_at",
                                      "original_due_at"], ("'processing'", "'awaiting_supplement'")),
    "ix_dossiers_open_by_id": ("dossiers", ["id", "sector", "status"], ("'processing'", "'awaiting_supplement'")),
    "ix_dossier_steps_held": ("dossier_steps", ["dossier_id", "agency", "status", "overdue", "due_at"],
                              ("'assigned'", "agency IS NOT NULL")),
}
INDEXES_0001_REPLACED = {
    "ix_dossiers_status_sector_level": ("dossiers", ["status", "sector", "level"]),
    "ix_dossiers_sector_overdue": ("dossiers", ["sector", "overdue"]),
    "ix_dossier_steps_agency_status": ("dossier_steps", ["agency", "status"]),
    "ix_dossier_steps_status_due_at": ("dossier_steps", ["status", "due_at"]),
}


def _indexes(url: str) -> dict[str, tuple[str, list[str], str | None]]:
    """name -> (table, columns, WHERE of a partial index as the database shows it)."""
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        found = {}
        for table in ("dossiers", "dossier_steps"):
            for index in inspector.get_indexes(table):
                options = index.get("dialect_options", {})
                where = options.get("postgresql_where", options.get("sqlite_where"))
                found[index["name"]] = (table, index["column_names"], None if where is None else str(where))
        return found
    finally:
        engine.dispose()


def _projection(url: str) -> tuple[int, int, int]:
    """Dossiers, steps, and held steps of open dossiers: what the upgrade must not change."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            held = (select(func.count()).select_from(DossierStepRow)
                    .join(DossierRow, DossierRow.id == DossierStepRow.dossier_id)
                    .where(DossierStepRow.status == "assigned", DossierRow.status == "processing"))
            return (session.scalar(select(func.count()).select_from(DossierRow)) or 0,
                    session.scalar(select(func.count()).select_from(DossierStepRow)) or 0,
                    session.scalar(held) or 0)
    finally:
        engine.dispose()


COLUMNS_0007 = {"received_by", "finished_at"}
COLUMNS_0011 = {"awaiting_since"}


def _apply_before_0004(session: Session, state: DossierState, seq: int) -> None:
    """`apply_state` as the projection wrote a new dossier before 0004 (no run_id column)."""
    _apply_old(session, state, seq, {"run_id"} | COLUMNS_0007 | COLUMNS_0011)


def _apply_old(session: Session, state: DossierState, seq: int,
               missing: set[str] = COLUMNS_0007 | COLUMNS_0011) -> None:
    """`apply_state` as the projection wrote a new dossier before the migration that added `missing`."""
    now = datetime.now(UTC)
    values = {k: v for k, v in projection._dossier_values(state, seq, now).items() if k not in missing}
    session.execute(insert(cast(Table, DossierRow.__table__)).values(values))
    session.execute(insert(cast(Table, DossierStepRow.__table__)), projection._step_values(state))


def test_0003_replaces_the_monitoring_indexes_and_downgrade_puts_them_back(db_url: str) -> None:
    assert upgrade(db_url, "0002") == "0002"
    engine = make_engine(db_url)
    with make_session_factory(engine).begin() as session:
        for n, progress in enumerate([0, 1, 1, 2, 3]):  # the last one is completed
            _apply_before_0004(session, make_state(f"HS-{n}", progress=progress), 1)
    engine.dispose()
    before = _projection(db_url)
    assert before == (5, 15, 4)
    old = _indexes(db_url)
    assert {name: (table, columns) for name, (table, columns, _) in old.items() if name in INDEXES_0001_REPLACED} \
        == INDEXES_0001_REPLACED
    assert not set(INDEXES_0003) & set(old)

    assert upgrade(db_url, "0003") == "0003"
    new = _indexes(db_url)
    assert not set(INDEXES_0001_REPLACED) & set(new)
    for name, (table, columns, conditions) in INDEXES_0003.items():
        assert new[name][:2] == (table, columns), name
        where = new[name][2]
        assert where is not None and all(c in where for c in conditions), (name, where)
    assert set(new) - set(INDEXES_0003) == set(old) - set(INDEXES_0001_REPLACED)  # the others are untouched
    assert _projection(db_url) == before
    if db_url.startswith("sqlite"):  # statistics for the planner, from the rows already there
        engine = make_engine(db_url)
        with engine.connect() as connection:
            analysed = set(connection.execute(text("SELECT idx FROM sqlite_stat1")).scalars())
        engine.dispose()
        assert set(INDEXES_0003) <= analysed

    assert downgrade(db_url, "0002") == "0002"
    assert _indexes(db_url) == old
    assert _projection(db_url) == before
    assert upgrade(db_url) == head()
    assert set(_indexes(db_url)) == set(new) | set(INDEXES_0005) | set(INDEXES_0007) | set(INDEXES_0011)


def test_0004_reserves_every_projected_id_and_downgrade_drops_the_reservations(db_url: str) -> None:
    assert upgrade(db_url, "0003") == "0003"
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        for n, progress in enumerate([0, 1, 3]):
            _apply_before_0004(session, make_state(f"HS-{n}", progress=progress), 1)
    before = _projection(db_url)

    assert upgrade(db_url, "0004") == "0004"
    assert "dossier_ids" in _tables(db_url)
    with sessions() as session:
        reserved = session.execute(select(DossierIdRow.id, DossierIdRow.request, DossierIdRow.run_id,
                                          DossierIdRow.reserved_at).order_by(DossierIdRow.id)).all()
        received = dict(session.execute(select(DossierRow.id, DossierRow.received_at)).tuples().all())
        assert set(session.scalars(select(DossierRow.run_id))) == {None}
    # Ids received before 0004 are taken (nobody's request, no known run), as of their receipt.
    assert [(i, r, run) for i, r, run, _ in reserved] == [(f"HS-{n}", None, None) for n in range(3)]
    assert {i: at for i, _, _, at in reserved} == received
    with sessions.begin() as session:
        assert not identity.reserve(session, "HS-1", request="r-1", received_by=None).mine
        assert identity.reserve(session, "HS-9", request="r-9", received_by=None).mine
    assert _projection(db_url) == before

    assert downgrade(db_url, "0003") == "0003"
    assert "dossier_ids" not in _tables(db_url)
    inspector_engine = make_engine(db_url)
    try:
        assert "run_id" not in {c["name"] for c in inspect(inspector_engine).get_columns("dossiers")}
    finally:
        inspector_engine.dispose()
    assert _projection(db_url) == before
    assert upgrade(db_url) == head()
    with sessions() as session:  # reserved again from the projection
        assert set(session.scalars(select(DossierIdRow.id))) == {"HS-0", "HS-1", "HS-2"}
    engine.dispose()


# The stuck-dossier indexes of 0005 (monitoring/collector.py).
INDEXES_0005 = {
    "ix_dossiers_abandoned": ("dossiers", ["sector", "status"], ("'abandoned'",)),
    "ix_dossiers_without_due": ("dossiers", ["sector", "status", "due_at", "updated_at"],
                                ("'processing'", "'awaiting_supplement'", "due_at IS NULL")),
}


def _statuses(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return dict(session.execute(select(DossierRow.id, DossierRow.status)).tuples().all())
    finally:
        engine.dispose()


def _set_status(url: str, dossier_id: str, status: str) -> None:
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            session.execute(update(DossierRow).where(DossierRow.id == dossier_id).values(status=status))
    finally:
        engine.dispose()


def test_0005_allows_abandoned_and_downgrade_gives_back_the_last_known_status(db_url: str) -> None:
    assert upgrade(db_url, "0004") == "0004"
    engine = make_engine(db_url)
    with make_session_factory(engine).begin() as session:
        for n, progress in enumerate([0, 1, 3]):  # the last one is completed
            _apply_old(session, make_state(f"HS-{n}", progress=progress), 1)
    engine.dispose()
    before = (_projection(db_url), _statuses(db_url))
    assert before[1] == {"HS-0": "processing", "HS-1": "processing", "HS-2": "completed"}
    with pytest.raises(IntegrityError):  # 0004 refuses the status
        _set_status(db_url, "HS-1", "abandoned")
    old = _indexes(db_url)

    assert upgrade(db_url, "0005") == "0005"
    new = _indexes(db_url)
    for name, (table, columns, conditions) in INDEXES_0005.items():
        assert new[name][:2] == (table, columns), name
        where = new[name][2]
        assert where is not None and all(c in where for c in conditions), (name, where)
    assert {k: v for k, v in new.items() if k not in INDEXES_0005} == old  # the others are untouched
    assert (_projection(db_url), _statuses(db_url)) == before
    _set_status(db_url, "HS-1", "abandoned")
    with pytest.raises(IntegrityError):  # still a closed list
        _set_status(db_url, "HS-0", "forgotten")
    assert _statuses(db_url)["HS-1"] == "abandoned"

    assert downgrade(db_url, "0004") == "0004"
    assert _indexes(db_url) == old
    assert (_projection(db_url), _statuses(db_url)) == before  # HS-1 processing again, as its state says
    with pytest.raises(IntegrityError):
        _set_status(db_url, "HS-1", "abandoned")
    assert upgrade(db_url) == head()
    _set_status(db_url, "HS-1", "abandoned")
    assert _statuses(db_url)["HS-1"] == "abandoned"


# The life-cycle index of 0007 (online dossiers waiting for receipt).
INDEXES_0007 = {"ix_dossiers_awaiting_receipt": ("dossiers", ["received_by", "received_at"], ("'submitted'",))}


def test_0007_allows_the_life_cycle_statuses_and_records_portal_statuses(db_url: str) -> None:
    assert upgrade(db_url, "0006") == "0006"
    engine = make_engine(db_url)
    with make_session_factory(engine).begin() as session:
        for n, progress in enumerate([0, 1, 3]):
            _apply_old(session, make_state(f"HS-{n}", progress=progress), 1)
    engine.dispose()
    before = (_projection(db_url), _statuses(db_url))
    with pytest.raises(IntegrityError):  # 0006 refuses the new statuses
        _set_status(db_url, "HS-1", "awaiting_obligation")
    old = _indexes(db_url)

    assert upgrade(db_url, "0007") == "0007"
    new = _indexes(db_url)
    for name, (table, columns, conditions) in INDEXES_0007.items():
        assert new[name][:2] == (table, columns), name
        where = new[name][2]
        assert where is not None and all(c in where for c in conditions), (name, where)
    # The open-dossier indexes now count dossiers awaiting a financial obligation.
    for name in ("ix_dossiers_open", "ix_dossiers_open_by_id", "ix_dossiers_without_due"):
        assert "'awaiting_obligation'" in (new[name][2] or ""), name
        assert "'awaiting_obligation'" not in (old[name][2] or ""), name
    assert (_projection(db_url), _statuses(db_url)) == before
    for status in ("submitted", "not_received", "awaiting_obligation", "withdrawn", "result_ready"):
        _set_status(db_url, "HS-1", status)
        assert _statuses(db_url)["HS-1"] == status
    with pytest.raises(IntegrityError):
        _set_status(db_url, "HS-1", "forgotten")
    _set_status(db_url, "HS-1", "processing")

    assert downgrade(db_url, "0006") == "0006"
    assert _indexes(db_url) == old
    assert (_projection(db_url), _statuses(db_url)) == before
    assert upgrade(db_url) == head()


# The exporter's indexes of 0011 (the applicant's turn, withdrawals not stopped yet).
INDEXES_0011 = {
    "ix_dossiers_awaiting_applicant": ("dossiers", ["sector", "level", "status", "awaiting_since"],
                                       ("'awaiting_supplement'", "'awaiting_obligation'")),
    "ix_dossiers_withdrawal_requested": ("dossiers", ["sector", "level"], ("portal_status = 7",)),
}


def _awaiting_since(url: str) -> dict[str, datetime | None]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return dict(session.execute(select(DossierRow.id, DossierRow.awaiting_since)).tuples().all())
    finally:
        engine.dispose()


def _before(revision: str) -> str:
    """The revision ``revision`` follows (the chain may gain revisions in between)."""
    before = ScriptDirectory.from_config(alembic_config()).get_revision(revision).down_revision
    assert isinstance(before, str), before
    return before


def test_0011_fills_when_the_applicants_turn_began_and_downgrade_drops_it(db_url: str) -> None:
    previous = _before("0011")
    assert upgrade(db_url, previous) == previous
    requested = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    paused = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
    waiting = make_state("HS-NOTE", progress=1).model_copy(update={
        "status": DossierStatus.AWAITING_SUPPLEMENT, "paused_at": requested,
        "notes": [Note(at=requested - timedelta(days=1), kind="supplement_requested", text="first"),
                  Note(at=requested - timedelta(hours=1), kind="resubmitted", text="done"),
                  Note(at=requested, kind="supplement_requested", text="again")]})
    paying = make_state("HS-PAUSED", progress=1).model_copy(update={
        "status": DossierStatus.AWAITING_OBLIGATION, "paused_at": paused})  # no note: its paused_at
    engine = make_engine(db_url)
    with make_session_factory(engine).begin() as session:
        for state in (make_state("HS-0", progress=1), waiting, paying):
            _apply_old(session, state, 1, COLUMNS_0011)
    engine.dispose()
    before = (_projection(db_url), _statuses(db_url))
    old = _indexes(db_url)

    assert upgrade(db_url, "0011") == "0011"
    new = _indexes(db_url)
    for name, (table, columns, conditions) in INDEXES_0011.items():
        assert new[name][:2] == (table, columns), name
        where = new[name][2]
        assert where is not None and all(c in where for c in conditions), (name, where)
    assert {k: v for k, v in new.items() if k not in INDEXES_0011} == old  # the others are untouched
    assert _awaiting_since(db_url) == {"HS-0": None, "HS-NOTE": requested, "HS-PAUSED": paused}
    assert (_projection(db_url), _statuses(db_url)) == before
    # The projection writes the same value from then on.
    assert projection.awaiting_since(waiting) == requested and projection.awaiting_since(paying) == paused

    assert downgrade(db_url, previous) == previous
    assert _indexes(db_url) == old
    engine = make_engine(db_url)
    try:
        assert "awaiting_since" not in {c["name"] for c in inspect(engine).get_columns("dossiers")}
    finally:
        engine.dispose()
    assert (_projection(db_url), _statuses(db_url)) == before
    assert upgrade(db_url) == head()
