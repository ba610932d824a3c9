"""Signed audit events: each event a person causes carries their Ed25519 signature over the
event's hash (see docs/security.md).

Events written before this revision carry none; ``audit verify`` reports the first of them
(a trail from before signing can only be trusted as far as its checkpoints).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("signature", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    op.drop_column("audit_event", "signature")
