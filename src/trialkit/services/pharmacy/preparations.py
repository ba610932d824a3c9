"""A participant's preparations: the current one and the void ones it replaced.

A participant has at most one current preparation (not void). Preparing again (for an
expired or spoilt preparation) voids the current one and records the next, numbered 2, 3,
...; nothing is deleted or overwritten but the void marks. The audit trail names the first
preparation by the participant id (as it always has) and the next ones ``PID#2``, ``PID#3``.
Blinded: nothing here reads the sealed details."""

from __future__ import annotations

import hashlib
from datetime import UTC
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, select

from trialkit.store.models import Preparation


def is_current() -> ColumnElement[bool]:
    """The condition a current (not void) preparation meets, for queries."""
    return col(Preparation.voided_at).is_(None)


def current_preparation(session: Session, pid: str) -> Preparation | None:
    """The participant's current preparation, or None if none was recorded."""
    stmt = select(Preparation).where(Preparation.participant_id == pid).where(is_current())
    return session.exec(stmt).first()


def dispensed_ids(session: Session) -> set[str]:
    """Participants with a current preparation (blinded: every arm is prepared alike)."""
    return set(session.exec(select(Preparation.participant_id).where(is_current())).all())


def audit_key(prep: Preparation) -> str:
    """How the audit trail names this preparation: ``PID`` for the first, ``PID#n`` after."""
    return prep.participant_id if prep.number == 1 else f"{prep.participant_id}#{prep.number}"


def _utc(at: Any) -> str:
    return str(at.astimezone(UTC).isoformat())


def preparation_snapshot(prep: Preparation) -> dict[str, Any]:
    """A preparation as the audit trail records it: blinded, the sealed details as a hash.
    Keys that did not exist when older preparations were recorded (a signed check, a
    number after the first, the void marks) appear only when they have a value, so those
    preparations still match their audit events."""
    snapshot: dict[str, Any] = {
        "participant": prep.participant_id,
        "prepared_at": _utc(prep.prepared_at),
        "prepared_by": prep.prepared_by,
        "checked_by": prep.checked_by,
        "expires_at": _utc(prep.expires_at),
        "sealed_details": hashlib.sha256(prep.sealed_details).hexdigest(),
        "label_prints": prep.label_prints,
    }
    if prep.checked_at is not None:
        snapshot["check_signed_at"] = _utc(prep.checked_at)
    if prep.number != 1:
        snapshot["number"] = prep.number
    if prep.voided_at is not None:
        snapshot |= {"voided_at": _utc(prep.voided_at), "voided_by": prep.voided_by,
                     "void_reason": prep.void_reason}
    return snapshot
