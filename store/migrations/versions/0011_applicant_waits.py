"""The applicant's waits and withdrawals for the exporter (issue 14): portal statuses 5,
6 and 7.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-16

* ``dossiers.awaiting_since``: when the applicant's current turn began (the latest
  supplement or financial-obligation request of a dossier in ``awaiting_supplement`` /
  ``awaiting_obligation``); NULL while the agencies hold the dossier. The projection
  writes it from the dossier's state. Filled here for the dossiers already waiting,
  from their state (the request's note, else ``paused_at``).
* ``ix_dossiers_awaiting_applicant`` (sector, level, status, awaiting_since), partial over
  the two statuses: ``lienthong_dossier_applicant_wait_oldest_seconds{sector,reason}``
  from the index alone.
* ``ix_dossiers_withdrawal_requested`` (sector, level), partial over portal status 7 (the
  applicant asked to withdraw, the dossier not stopped yet): the workflow stops a
  dossier in the same write, so it is normally empty, and
  ``lienthong_dossiers_withdrawal_requested{sector}`` reads nothing to say so.

Downgrading drops both indexes and the column (plain ALTER TABLE DROP COLUMN, as 0007
does). Self-contained (no import of store.models); names are final (op.f).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The note each waiting status is opened by (workflows.payloads.Note.kind).
REQUESTS = {"awaiting_supplement": "supplement_requested", "awaiting_obligation": "obligation_requested"}
AWAITING = f"status IN ({', '.join(repr(s) for s in REQUESTS)})"
WITHDRAWAL_REQUESTED = "portal_status = 7"
ADDED = [
    ("ix_dossiers_awaiting_applicant", ["sector", "level", "status", "awaiting_since"], AWAITING),
    ("ix_dossiers_withdrawal_requested", ["sector", "level"], WITHDRAWAL_REQUESTED),
]


def upgrade() -> None:
    op.add_column("dossiers", sa.Column("awaiting_since", sa.DateTime(timezone=True), nullable=True))
    _fill_awaiting_since()
    for name, columns, where in ADDED:
        op.create_index(op.f(name), "dossiers", columns, postgresql_where=sa.text(where),
                        sqlite_where=sa.text(where))


def downgrade() -> None:
    for name, _, _ in reversed(ADDED):
        op.drop_index(op.f(name), table_name="dossiers")
    op.execute("ALTER TABLE dossiers DROP COLUMN awaiting_since")


def _fill_awaiting_since() -> None:
    bind = op.get_bind()
    dossiers = sa.table("dossiers", sa.column("id", sa.String()), sa.column("status", sa.String()),
                        sa.column("state", sa.JSON()), sa.column("awaiting_since", sa.DateTime(timezone=True)))
    rows = bind.execute(sa.select(dossiers.c.id, dossiers.c.status, dossiers.c.state)
                        .where(dossiers.c.status.in_(list(REQUESTS)))).all()
    for dossier_id, status, state in rows:
        since = _since(state if isinstance(state, dict) else json.loads(state), REQUESTS[status])
        if since is None:
            continue
        # Stored as the store's UTCDateTime does: naive UTC on SQLite, an instant on PostgreSQL.
        value = since.astimezone(UTC)
        bind.execute(dossiers.update().where(dossiers.c.id == dossier_id).values(
            awaiting_since=value.replace(tzinfo=None) if bind.dialect.name == "sqlite" else value))


def _since(state: dict[str, Any], kind: str) -> datetime | None:
    """The latest request of ``kind`` among the state's notes, else its ``paused_at``."""
    requested = [note.get("at") for note in state.get("notes") or [] if note.get("kind") == kind]
    text = requested[-1] if requested else state.get("paused_at")
    return datetime.fromisoformat(text) if isinstance(text, str) else None
