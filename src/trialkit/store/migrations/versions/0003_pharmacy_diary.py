"""Pharmacy and outcomes: preparations, diary entries (versioned), infusion day,
emergency-unblinding flag, database lock.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trialkit.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch table copy): SQLite does it in place, keeping the rows
    # other tables reference.
    op.add_column("participant", sa.Column("infusion_date", sa.String(10), nullable=True))
    op.add_column(
        "participant",
        sa.Column("unblinded_emergency", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("trial", sa.Column("locked_at", UTCDateTime(), nullable=True))
    op.add_column("trial", sa.Column("locked_by", sa.String(64), nullable=True))
    op.create_table(
        "preparation",
        sa.Column(
            "participant_id", sa.String(16), sa.ForeignKey("participant.id"), primary_key=True
        ),
        sa.Column("prepared_at", UTCDateTime(), nullable=False),
        sa.Column("prepared_by", sa.String(64), nullable=False),
        sa.Column("checked_by", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("sealed_details", sa.LargeBinary, nullable=False),
        sa.Column("label_prints", sa.Integer, nullable=False),
    )
    op.create_table(
        "diary_entry",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "participant_id", sa.String(16), sa.ForeignKey("participant.id"), nullable=False
        ),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("headache", sa.Boolean, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("duration_hours", sa.Float, nullable=False),
        sa.Column("acute_medication", sa.Boolean, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("current", sa.Boolean, nullable=False),
        sa.UniqueConstraint("participant_id", "day", "version"),
    )
    op.create_index("ix_diary_entry_participant_id", "diary_entry", ["participant_id"])
    op.create_index("ix_diary_entry_current", "diary_entry", ["participant_id", "current", "day"])


def downgrade() -> None:
    raise NotImplementedError("trialkit never downgrades a trial database")
