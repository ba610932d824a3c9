"""Each randomized participant's diary, summarised per window (days recorded, whether the
window's outcome can be prorated, the window's dates), kept current by the services in the
same transaction as the diary day, randomization, infusion or withdrawal it depends on, so
the status, the dashboard and CONSORT count in the database instead of reading every diary
row. Filled here from the records that exist.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "diary_window_summary",
        sa.Column("participant_id", sa.String(16), sa.ForeignKey("participant.id"),
                  primary_key=True),
        sa.Column("window", sa.String(32), primary_key=True),
        sa.Column("site_code", sa.String(64), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("is_baseline", sa.Boolean(), nullable=False),
        sa.Column("randomized_day", sa.Integer(), nullable=False),
        sa.Column("start_day", sa.Integer(), nullable=True),
        sa.Column("end_day", sa.Integer(), nullable=True),
        sa.Column("since_day", sa.Integer(), nullable=False),
        sa.Column("withdrawn_day", sa.Integer(), nullable=True),
        sa.Column("first_day", sa.Integer(), nullable=True),
        sa.Column("last_day", sa.Integer(), nullable=True),
        sa.Column("infused", sa.Boolean(), nullable=False),
        sa.Column("days_recorded", sa.Integer(), nullable=False),
        sa.Column("prorated", sa.Boolean(), nullable=False),
        sa.Column("last_recorded_day", sa.Integer(), nullable=True),
    )
    # Imported here: the summary is computed by the one rule (domain.diary.derive_outcomes)
    # the services use, reading only columns this revision has.
    from sqlmodel import Session

    from trialkit.services.diary.window_summary import rebuild

    with Session(bind=op.get_bind()) as session:
        rebuild(session)
        session.flush()


def downgrade() -> None:
    op.drop_table("diary_window_summary")
