"""Whole blocks: each list segment records how many envelopes its sealing or extension
released (the rest of its whole blocks stay held back); strata without a site
(``stratify_by_site = false``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for the segments sealed so far: they hold exactly what was asked for, all released.
    op.add_column("allocation_list", sa.Column("released", sa.Integer(), nullable=True))
    # The design each segment was sealed with, as the protocol states it; NULL before.
    op.add_column("allocation_list", sa.Column("design", sa.Text(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.execute(
        sa.text("SELECT 1 FROM stratum LIMIT 1")
    ).first() is not None:
        # SQLite drops NOT NULL only by rebuilding the table, which its foreign keys forbid
        # once envelopes refer to it. A trial with strata already sealed them before strata
        # without a site could be sealed (that ended in a foreign key error), so every one of
        # its strata has a site and its protocol (stored, never changed) stratifies by site.
        return
    with op.batch_alter_table("stratum") as batch:
        batch.alter_column("site_code", existing_type=sa.String(16), nullable=True)


def downgrade() -> None:
    raise NotImplementedError("trialkit never downgrades a trial database")
