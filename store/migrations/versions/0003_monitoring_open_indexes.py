"""Monitoring: partial covering indexes over open dossiers and held steps, in place of
the four full indexes of 0001 that only the exporter used (issue 11 §5).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Added (the exporter's queries become index-only scans of what they count; finished
dossiers and steps nobody holds are not in them):

* ``ix_dossiers_open`` (sector, level, status, procedure_code, overdue, due_at,
  original_due_at) over open dossiers: the open counts and the overdue pass, read in the
  order of their GROUP BY;
* ``ix_dossiers_open_by_id`` (id, sector, status) over open dossiers: the side of the
  join with the held steps (a merge join of two index-only scans on PostgreSQL, a
  covering look-up per step on SQLite);
* ``ix_dossier_steps_held`` (dossier_id, agency, status, overdue, due_at) over the steps
  an agency holds (``assigned``, agency known). ``status`` is a column as well as the
  condition: SQLite counts a partial index as covering only when every column the
  query names is in it.

Dropped: ``ix_dossiers_status_sector_level``, ``ix_dossiers_sector_overdue``,
``ix_dossier_steps_agency_status``, ``ix_dossier_steps_status_due_at``. No other query
uses them, every write of the projection paid for them, and SQLite without statistics
preferred them to the partial indexes (a look-up per row). Downgrading puts them back.

Only indexes: nothing the projection writes changes. Building reads the whole tables
and, on PostgreSQL, holds off writes to ``dossiers`` / ``dossier_steps`` meanwhile (about
5 s for a million open dossiers and their 3 million steps). On SQLite the upgrade then
runs ANALYZE on the two tables, so a store that already has dossiers gets statistics
for the planner (an empty table gets none; see monitoring/BENCHMARK.md).
Self-contained like 0001 (no import of store.models); names are final (op.f).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status IN ('processing', 'awaiting_supplement')"
HELD = "status = 'assigned' AND agency IS NOT NULL"

ADDED = [
    ("ix_dossiers_open", "dossiers",
     ["sector", "level", "status", "procedure_code", "overdue", "due_at", "original_due_at"], OPEN),
    ("ix_dossiers_open_by_id", "dossiers", ["id", "sector", "status"], OPEN),
    ("ix_dossier_steps_held", "dossier_steps", ["dossier_id", "agency", "status", "overdue", "due_at"], HELD),
]
DROPPED = [  # as 0001 created them
    ("ix_dossiers_status_sector_level", "dossiers", ["status", "sector", "level"]),
    ("ix_dossiers_sector_overdue", "dossiers", ["sector", "overdue"]),
    ("ix_dossier_steps_agency_status", "dossier_steps", ["agency", "status"]),
    ("ix_dossier_steps_status_due_at", "dossier_steps", ["status", "due_at"]),
]


def upgrade() -> None:
    for name, table, _ in DROPPED:
        op.drop_index(op.f(name), table_name=table)
    for name, table, columns, where in ADDED:
        op.create_index(op.f(name), table, columns, postgresql_where=sa.text(where), sqlite_where=sa.text(where))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ANALYZE dossiers")
        op.execute("ANALYZE dossier_steps")


def downgrade() -> None:
    for name, table, _, _ in reversed(ADDED):
        op.drop_index(op.f(name), table_name=table)
    for name, table, columns in reversed(DROPPED):
        op.create_index(op.f(name), table, columns)
