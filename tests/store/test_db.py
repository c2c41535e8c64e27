"""Which database, and how connections are set up."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from store import db


def test_database_url_explicit_then_environment_then_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    default = tmp_path / "state" / "lienthong.db"
    monkeypatch.setattr(db, "DEFAULT_SQLITE_FILE", default)
    monkeypatch.delenv(db.ENV_VAR, raising=False)
    assert db.database_url() == f"sqlite:///{default}"
    assert default.parent.is_dir()  # created, so SQLite can create the file

    monkeypatch.setenv(db.ENV_VAR, "sqlite:////srv/lienthong.db")
    assert db.database_url() == "sqlite:////srv/lienthong.db"
    assert db.database_url("sqlite:////other.db") == "sqlite:////other.db"


@pytest.mark.parametrize("given", ["postgresql://u:p%40ss@h:5432/lt", "postgres://u:p%40ss@h:5432/lt"])
def test_libpq_urls_use_psycopg_3(given: str) -> None:
    assert db.database_url(given) == "postgresql+psycopg://u:p%40ss@h:5432/lt"


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        db.make_engine("mysql://localhost/lt")


def test_connection_settings(engine: Engine) -> None:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() == db.SQLITE_BUSY_TIMEOUT_MS
        else:
            assert engine.pool._pre_ping
            assert engine.dialect.driver == "psycopg"
