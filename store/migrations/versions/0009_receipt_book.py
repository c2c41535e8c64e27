"""The receipt book (issue 15 §1): entry numbers of the forms Mẫu 01 and Mẫu 07.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10

``receipt_book``: one row per received dossier, numbered per receiving desk and per
year of receipt (the volume). A number is given once, the first time a receipt slip or
the book needs it (store/receipt_book.py), and never changes. Downgrading drops the
table: the numbers already printed are then given again, in the same order, as long as
no receipt is back-dated before them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "receipt_book",
        sa.Column("desk", sa.String(), nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("dossier_id", sa.String(), nullable=False),
        sa.Column("received_at", Instant, nullable=False),
        sa.Column("assigned_at", Instant, nullable=False),
        sa.CheckConstraint("number >= 1", name=op.f("ck_receipt_book_number_positive")),
        sa.PrimaryKeyConstraint("desk", "volume", "number", name=op.f("pk_receipt_book")),
        sa.UniqueConstraint("dossier_id", name=op.f("uq_receipt_book_dossier_id")),
    )


def downgrade() -> None:
    op.drop_table("receipt_book")
