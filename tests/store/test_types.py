"""Instants are timezone-aware going in and coming out, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker

from store.models import AgencyRow
from tests.store.builders import HCM


def _agency(updated_at: datetime) -> AgencyRow:
    return AgencyRow(code="thue-co-so", name="Thuế cơ sở", level="trung-uong", webhook_url=None,
                     receives_dossiers=False, updated_at=updated_at)


def test_aware_datetime_round_trips_equal(sessions: sessionmaker[Session]) -> None:
    written = datetime(2026, 1, 2, 15, 30, 12, 345678, tzinfo=HCM)
    with sessions.begin() as session:
        session.add(_agency(written))
    with sessions() as session:
        read = session.scalars(select(AgencyRow.updated_at)).one()
    assert read == written
    assert read.utcoffset() == timedelta(0)  # handed back in UTC
    assert read == datetime(2026, 1, 2, 8, 30, 12, 345678, tzinfo=UTC)


def test_instants_compare_as_instants_in_queries(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(_agency(datetime(2026, 1, 2, 15, 0, tzinfo=HCM)))  # 08:00 UTC
    with sessions() as session:
        later = datetime(2026, 1, 2, 8, 30, tzinfo=timezone(timedelta(hours=-5)))  # 13:30 UTC
        assert session.scalars(select(AgencyRow.code).where(AgencyRow.updated_at < later)).all() == ["thue-co-so"]


def test_stored_as_utc(engine: Engine, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(_agency(datetime(2026, 1, 2, 15, 30, tzinfo=HCM)))
    query = {
        "sqlite": "SELECT updated_at FROM agencies",  # naive UTC text
        "postgresql": "SELECT CAST(updated_at AT TIME ZONE 'UTC' AS TEXT) FROM agencies",
    }[engine.dialect.name]
    with engine.connect() as connection:
        assert connection.execute(text(query)).scalar_one().startswith("2026-01-02 08:30:00")


def test_reading_does_not_depend_on_the_session_time_zone(engine: Engine, sessions: sessionmaker[Session]) -> None:
    written = datetime(2026, 1, 2, 15, 30, tzinfo=HCM)
    with sessions.begin() as session:
        session.add(_agency(written))
    with sessions() as session:
        if engine.dialect.name == "postgresql":
            session.execute(text("SET TIME ZONE 'America/New_York'"))
        read = session.scalars(select(AgencyRow.updated_at)).one()
    assert (read, read.utcoffset()) == (written, timedelta(0))


def test_naive_datetime_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        with sessions.begin() as session:
            session.add(_agency(datetime(2026, 1, 2, 15, 30)))
