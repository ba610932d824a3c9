"""The demo marker: a trial built by ``trialkit demo`` says so, so that ``demo --fresh``
can tell its own throwaway trial from any other (which it must never erase).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every trial created before this revision is not the demo (an older demo.db is kept
    # safe too: `demo --fresh` refuses it; remove the file yourself to rebuild it).
    op.add_column(
        "trial", sa.Column("demo", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    raise NotImplementedError("trialkit never downgrades a trial database")
