"""The store owns dossier identity (issue 13 §2, DESIGN decision 5c).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Added:

* ``dossier_ids``: every dossier id ever received, reserved before its workflow starts
  and never released (store/identity.py). ``request`` is the idempotency identity that
  reserved it (a retry of that request may start it, no other request may), ``run_id``
  the workflow run started for it (NULL until it has started). The upgrade reserves
  every id the projection already holds (request and run unknown), so an id received
  before this revision is refused too.
* ``dossiers.run_id``: the workflow run the projection row and the audit log describe
  (NULL for rows written before; the first write that knows it sets it). `dossiers
  resync` compares it with the run Temporal has.

Downgrading drops both: the reservations are lost, the projection is unchanged
otherwise. Self-contained like 0001 (no import of store.models); names are final (op.f).
SQLite 3.35 or newer drops the column in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dossier_ids",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("request", sa.String(), nullable=True),
        sa.Column("received_by", sa.String(), nullable=True),
        sa.Column("reserved_at", Instant, nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("started_at", Instant, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dossier_ids")),
    )
    op.add_column("dossiers", sa.Column("run_id", sa.String(), nullable=True))
    # Ids received before this revision stay taken (their request and run are unknown).
    op.execute("INSERT INTO dossier_ids (id, reserved_at) SELECT id, received_at FROM dossiers")


def downgrade() -> None:
    op.drop_column("dossiers", "run_id")
    op.drop_table("dossier_ids")
