"""A custodian's second factor (TOTP): the shared secret, stored only wrapped under the
custodian's password like their keys, and the last time step accepted (no code twice).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in (
        sa.Column("totp_wrapped", sa.LargeBinary, nullable=True),
        sa.Column("totp_kdf", sa.Text, nullable=True),
        sa.Column("totp_last_step", sa.Integer, nullable=True),
    ):
        op.add_column("app_user", column)


def downgrade() -> None:
    for name in ("totp_last_step", "totp_kdf", "totp_wrapped"):
        op.drop_column("app_user", name)
