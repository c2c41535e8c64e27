"""The schema comes from the migrations, and the migrations match the models."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, inspect, select

from store.db import make_engine, make_session_factory
from store.migrate import current, downgrade, head, main, upgrade
from store.models import SectorRow, metadata
from tests.conftest import REPO

TABLES = {
    "definitions", "agencies", "sectors", "dossiers", "dossier_steps",
    "dossier_events", "inbox_items", "webhook_deliveries",
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
