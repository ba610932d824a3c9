"""Custody no single person controls: enrolment codes, each user's own signing key,
custodian approval, the recovery key, sign-in throttling for unknown names.

Accounts that exist already were set up with passwords their owners typed at ``init`` or
were given: they count as activated, and custodians who hold keys already as approved.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trialkit.store.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in (
        sa.Column("activated_at", UTCDateTime(), nullable=True),
        sa.Column("enrolment_code_hash", sa.String(64), nullable=True),
        sa.Column("enrolment_expires_at", UTCDateTime(), nullable=True),
        sa.Column("signing_public_key", sa.LargeBinary, nullable=True),
        sa.Column("wrapped_signing_key", sa.LargeBinary, nullable=True),
        sa.Column("signing_kdf", sa.Text, nullable=True),
        sa.Column("custodian_approved_at", UTCDateTime(), nullable=True),
        sa.Column("custodian_approved_by", sa.String(64), nullable=True),
    ):
        op.add_column("app_user", column)
    op.execute("UPDATE app_user SET activated_at = created_at")
    op.execute(
        "UPDATE app_user SET custodian_approved_at = created_at, "
        "custodian_approved_by = '(before approval)' WHERE custodian AND public_key IS NOT NULL"
    )
    # The recovery key: its public half on the trial, every list key wrapped to it.
    op.add_column("trial", sa.Column("recovery_public_key", sa.LargeBinary, nullable=True))
    op.add_column("allocation_list", sa.Column("recovery_key", sa.LargeBinary, nullable=True))
    op.create_table(
        "sign_in_throttle",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("failed_logins", sa.Integer, nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    raise NotImplementedError("trialkit never downgrades a trial database")
