"""Authorization by involvement (issue 13 §3): desks' receiving scope, retired agencies.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Added to ``agencies``:

* ``receives``: a one-stop desk's receiving scope (its procedure levels, the communes
  it receives for, and the procedures of the province-wide list of Decree 118/2025
  Art. 14 it receives anywhere), as `definitions deploy` writes it from agencies.yaml.
  NULL for agencies that receive nothing; until the next deploy, a desk deployed before
  this revision has NULL too and its submissions are refused (deploy again).
* ``retired_at``: when the agency left the registry (a deploy without it, or `lienthong
  agencies retire`). Retired agencies are kept (history names them); their tokens stop
  working and submission refuses procedures routed to them.

Downgrading drops both columns. Self-contained (no import of store.models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Instant = sa.DateTime(timezone=True)
Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("agencies") as batch:
        batch.add_column(sa.Column("receives", Document, nullable=True))
        batch.add_column(sa.Column("retired_at", Instant, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agencies") as batch:
        batch.drop_column("retired_at")
        batch.drop_column("receives")
