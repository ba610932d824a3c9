"""Allocation: strata, sealed list segments, key grants, envelopes, participants.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trialkit.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stratum",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("site_code", sa.String(16), sa.ForeignKey("site.code"), nullable=False),
        sa.Column("levels_json", sa.Text, nullable=False),
    )
    op.create_table(
        "allocation_list",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("stratum_code", sa.String(64), sa.ForeignKey("stratum.code"), nullable=False),
        sa.Column("segment", sa.Integer, nullable=False),
        sa.Column("first_seq", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sealed_policy", sa.LargeBinary, nullable=False),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("leaves", sa.LargeBinary, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
        sa.Column("signing_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.UniqueConstraint("stratum_code", "segment"),
    )
    op.create_table(
        "list_key_grant",
        sa.Column("list_id", sa.String(32), sa.ForeignKey("allocation_list.id"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("app_user.id"), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "participant",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("site_code", sa.String(16), sa.ForeignKey("site.code"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("stratum_code", sa.String(64), nullable=False),
        sa.Column("factors_json", sa.Text, nullable=False),
        sa.Column("age", sa.Integer, nullable=False),
        sa.Column("sex", sa.String(1), nullable=False),
        sa.Column("weight_kg", sa.Float, nullable=False),
        sa.Column("answers_json", sa.Text, nullable=False),
        sa.Column("eligible", sa.Boolean, nullable=False),
        sa.Column("failed_json", sa.Text, nullable=False),
        sa.Column("screened_at", UTCDateTime(), nullable=False),
        sa.Column("screened_by", sa.String(64), nullable=False),
        sa.Column("consent_date", sa.String(10), nullable=True),
        sa.Column("consent_form_version", sa.String(32), nullable=True),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
        sa.Column("withdrawal_reason", sa.Text, nullable=True),
        sa.Column("randomization_number", sa.String(16), nullable=True, unique=True),
        sa.Column("label_code", sa.String(16), nullable=True, unique=True),
        sa.Column("randomized_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("site_code", "number"),
    )
    op.create_table(
        "envelope",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("list_id", sa.String(32), sa.ForeignKey("allocation_list.id"), nullable=False),
        sa.Column("stratum_code", sa.String(64), sa.ForeignKey("stratum.code"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("commitment", sa.String(64), nullable=False),
        sa.Column(
            "participant_id",
            sa.String(16),
            sa.ForeignKey("participant.id"),
            nullable=True,
            unique=True,
        ),
        sa.Column("bound_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("stratum_code", "seq"),
    )
    op.create_index("ix_envelope_list_id", "envelope", ["list_id"])
    op.create_index("ix_envelope_next", "envelope", ["stratum_code", "participant_id", "seq"])


def downgrade() -> None:
    raise NotImplementedError("trialkit never downgrades a trial database")
