"""The National Public Service Portal's outbox (issue 15 §3).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14

``portal_outbox``: one row per change the portal is told of (a portal status change,
or a step of the processing timeline), written by the store write that records the
audit-log event, in its transaction, keyed like it by (dossier_id, seq). The portal
sync sends each dossier's rows in seq order and marks them delivered, or parked when
the portal refuses one for good. Three small partial indexes: the rows that wait, by
dossier and seq (only a dossier's oldest is sent) and by age (the claim's order, the
lag gauge), and the parked rows (their gauge).

Downgrading drops the table (undelivered changes with it). Self-contained (no import
of store.models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Instant = sa.DateTime(timezone=True)
Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
PENDING = "delivered_at IS NULL AND parked_at IS NULL"
PARKED = "parked_at IS NOT NULL AND delivered_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "portal_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dossier_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("portal_status", sa.Integer(), nullable=False),
        sa.Column("payload", Document, nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("delivered_at", Instant, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", Instant, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_outbox")),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossiers.id"], name=op.f("fk_portal_outbox_dossier_id_dossiers"),
                                ondelete="CASCADE"),
        sa.UniqueConstraint("dossier_id", "seq", name=op.f("uq_portal_outbox_dossier_id_seq")),
        sa.CheckConstraint("portal_status BETWEEN 1 AND 10", name=op.f("ck_portal_outbox_portal_status")),
    )
    for name, columns, where in (("ix_portal_outbox_pending", ["dossier_id", "seq"], PENDING),
                                 ("ix_portal_outbox_pending_created", ["created_at", "id"], PENDING),
                                 ("ix_portal_outbox_parked", ["dossier_id", "seq"], PARKED)):
        op.create_index(op.f(name), "portal_outbox", columns, postgresql_where=sa.text(where),
                        sqlite_where=sa.text(where))


def downgrade() -> None:
    op.drop_table("portal_outbox")
