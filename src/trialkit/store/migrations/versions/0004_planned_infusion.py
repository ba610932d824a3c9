"""The planned infusion date the pharmacy queue shows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("participant", sa.Column("planned_infusion_date", sa.String(10), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("trialkit never downgrades a trial database")
