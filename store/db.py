"""Where the database is and how to connect to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings

ENV_VAR = "LIENTHONG_DATABASE_URL"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_SQLITE_FILE = REPO / ".lienthong" / "lienthong.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def database_url(explicit: str | None = None) -> str:
    """The database to use: ``explicit``, else ``$LIENTHONG_DATABASE_URL``, else a
    SQLite file in the repository's ``.lienthong/`` (created if needed).

    ``postgresql://`` and ``postgres://`` URLs (as libpq tools write them) are
    pointed at psycopg 3, the driver this project installs.
    """
    url = explicit or get_settings().database_url
    if not url:
        DEFAULT_SQLITE_FILE.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{DEFAULT_SQLITE_FILE}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class DatabaseURLError(ValueError):
    """A database URL that cannot work whatever the server does (said without its password)."""


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    url = database_url(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    shown = parsed.render_as_string(hide_password=True)
    if backend == "sqlite":
        folder = Path(parsed.database).parent if parsed.database not in (None, "", ":memory:") else None
        if folder is not None and not folder.is_dir():
            raise DatabaseURLError(f"database {shown}: the folder {folder} does not exist")
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        # Connections left idle across a database restart are replaced, not handed out dead.
        return create_engine(url, pool_pre_ping=True, **kwargs)
    raise DatabaseURLError(f"unsupported database {shown!r}; expected sqlite:///FILE or postgresql://…")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite
        # WAL: readers (gateway, exporter) do not block the writer and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        # Writers queue for the single write lock instead of failing at once.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Rows stay readable after commit: callers hand them on after the transaction ends.
    return sessionmaker(engine, expire_on_commit=False)
