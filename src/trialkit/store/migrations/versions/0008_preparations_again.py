"""A participant's infusion can be prepared again (the first expired or was spoilt): the
preparation table holds every preparation, numbered per participant, the replaced ones
marked void (when, by whom, why); at most one is current.

The table is rebuilt (its primary key changes from the participant to a row id): the rows
are copied as they are, each becoming preparation number 1.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trialkit.store.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COPIED = ("participant_id, prepared_at, prepared_by, checked_by, checked_at, expires_at, "
          "sealed_details, label_prints")


def upgrade() -> None:
    op.create_table(
        "preparation_v2",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "participant_id", sa.String(16), sa.ForeignKey("participant.id"), nullable=False
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("prepared_at", UTCDateTime(), nullable=False),
        sa.Column("prepared_by", sa.String(64), nullable=False),
        sa.Column("checked_by", sa.String(64), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("sealed_details", sa.LargeBinary, nullable=False),
        sa.Column("label_prints", sa.Integer, nullable=False),
        sa.Column("voided_at", UTCDateTime(), nullable=True),
        sa.Column("voided_by", sa.String(64), nullable=True),
        sa.Column("void_reason", sa.Text, nullable=True),
        sa.UniqueConstraint("participant_id", "number", name="uq_preparation_number"),
    )
    op.execute(
        f"INSERT INTO preparation_v2 (number, {COPIED}) "
        f"SELECT 1, {COPIED} FROM preparation ORDER BY prepared_at, participant_id"
    )
    op.drop_table("preparation")
    op.rename_table("preparation_v2", "preparation")
    op.create_index(
        "ix_preparation_one_current",
        "preparation",
        ["participant_id"],
        unique=True,
        sqlite_where=sa.text("voided_at IS NULL"),
        postgresql_where=sa.text("voided_at IS NULL"),
    )


def downgrade() -> None:
    raise NotImplementedError("trialkit never downgrades a trial database")
