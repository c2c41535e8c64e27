"""INSERT … ON CONFLICT for the two supported databases (same SQL on both), and
counting what a write touched."""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are written for sqlite and postgresql, not {dialect}")


def touched(session: Session, statement: Any) -> int:
    """Execute an INSERT/UPDATE/DELETE and count the rows it wrote (an ON CONFLICT that
    skipped counts 0). Counted with RETURNING, not ``rowcount``: psycopg 3 resets
    rowcount once SQLAlchemy has closed the cursor (sqlalchemy/sqlalchemy#10696)."""
    return len(session.execute(statement.returning(literal_column("1"))).all())
