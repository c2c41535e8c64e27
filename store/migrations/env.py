"""Alembic environment, driven from code by :mod:`store.migrate` (no alembic.ini).

The caller passes an open connection in ``config.attributes["connection"]``; without
one, a URL comes from ``config.attributes["url"]``, ``-x url=…`` or ``$LIENTHONG_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from store.db import database_url, make_engine
from store.models import metadata

config = context.config

# Any constant: serialises concurrent upgrades on PostgreSQL (workers starting together).
PG_MIGRATION_LOCK = 0x6C6965_6E74686F


def _url() -> str:
    return config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url") or database_url()


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: rebuild the table ("batch") instead.
        render_as_batch=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        context.run_migrations()


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    engine = make_engine(_url())
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()
