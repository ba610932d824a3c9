"""The checker of a preparation signs the check with their password: when they signed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trialkit.store.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("preparation", sa.Column("checked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("trialkit never downgrades a trial database")
