"""Signed audit events: each event a person causes carries their Ed25519 signature over the
event's hash (see docs/security.md).

A trail written before this revision carries none: the upgrade appends one system event,
``audit.signing_begins``, after it. ``audit verify`` accepts the unsigned events before
that event (an older trail is trusted as far as its checkpoints and noted heads) and none
after it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from trialkit.domain.audit_chain import ChainFields, canonical_json, event_hash
from trialkit.domain.audit_signing import SIGNING_BEGINS, SYSTEM
from trialkit.store.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

EVENTS = sa.table(
    "audit_event",
    sa.column("seq", sa.Integer), sa.column("at", UTCDateTime()),
    sa.column("user_name", sa.String), sa.column("role", sa.String),
    sa.column("action", sa.String), sa.column("entity", sa.String),
    sa.column("entity_id", sa.String), sa.column("before_json", sa.Text),
    sa.column("after_json", sa.Text), sa.column("reason", sa.Text),
    sa.column("prev_hash", sa.String), sa.column("hash", sa.String),
)


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("signature", sa.LargeBinary, nullable=True))
    conn = op.get_bind()
    head = conn.execute(
        sa.select(EVENTS.c.seq, EVENTS.c.hash, EVENTS.c.at).order_by(EVENTS.c.seq.desc()).limit(1)
    ).first()
    if head is None:
        return  # a new trial: every event is signed from the first
    seq, prev, last_at = head
    fields = ChainFields(
        seq=seq + 1, at=max(datetime.now(UTC), last_at), user_name=SYSTEM, role="-",
        action=SIGNING_BEGINS, entity="audit_event", entity_id="signature", before_json=None,
        after_json=canonical_json({"unsigned_before": seq + 1}),
        reason=f"schema upgrade: events 1 to {seq} were written before events were signed",
        prev_hash=prev,
    )
    conn.execute(EVENTS.insert().values(**vars(fields), hash=event_hash(fields)))


def downgrade() -> None:
    op.drop_column("audit_event", "signature")
