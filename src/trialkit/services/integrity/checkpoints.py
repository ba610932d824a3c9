"""Signed audit checkpoints (``domain.checkpoint``): writing one, audited, and checking
checkpoints kept outside the database against the trail.

A checkpoint covers its own ``audit.checkpoint`` event: the event is appended first and
the checkpoint counts it, so removing it is removing an event the checkpoint counts.
Its signer's key must be the one the trail records for that user at or before that event
(the ``signing_key`` of the latest state of the user an event recorded), so a checkpoint
signed with a key the trail never gave its signer is refused."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, col, select

from trialkit.domain.audit_signing import SignatureWalk
from trialkit.domain.checkpoint import (
    MAX_BYTES,
    Checkpoint,
    parse_checkpoint,
    sign_checkpoint,
    signature_holds,
)
from trialkit.domain.clock import Clock
from trialkit.domain.credentials import key_fingerprint
from trialkit.domain.errors import IntegrityFailure, InvalidInput, PermissionDenied, write_failed
from trialkit.services.actor import Actor
from trialkit.services.administration.trial import get_trial
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import AuditEvent, User

ACTION = "audit.checkpoint"
SUFFIX = ".checkpoint.json"


def checkpoint_path(out: str | Path, *, may_replace: bool = False) -> Path:
    """Where a checkpoint named by the user goes, checked before anything is written:
    a file name in an existing folder; an existing file is refused unless ``may_replace``
    (a checkpoint kept is evidence: ``audit checkpoint`` never overwrites one)."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise InvalidInput(f"{str(out)!r} is a folder: give a file name, e.g. "
                           f"trail{SUFFIX}")
    if not path.parent.is_dir():
        raise InvalidInput(f"{str(out)!r}: folder {path.parent} does not exist")
    if path.exists() and not may_replace:
        raise InvalidInput(f"{str(out)!r} already exists: a checkpoint is never overwritten; "
                           "give a new file name")
    return path


def beside(output: Path) -> Path:
    """The checkpoint written next to an export or other output: ``NAME.checkpoint.json``."""
    return output.with_name(output.stem + SUFFIX)


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """Write the file atomically (a temporary name, then a rename); one line on failure."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        partial.write_text(checkpoint.text(), encoding="utf-8")
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise write_failed(err, path) from None


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and parse one checkpoint file; bad input (exit 2) in one line."""
    where = str(path)
    try:
        with Path(path).expanduser().open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as err:
        raise InvalidInput(f"cannot read checkpoint {where}: {err.strerror or err}") from None
    return parse_checkpoint(data, where)


def _head(session: Session) -> tuple[int, str]:
    row = session.exec(
        select(AuditEvent.seq, AuditEvent.hash).order_by(col(AuditEvent.seq).desc()).limit(1)
    ).first()
    if row is None:
        raise InvalidInput("this database's audit trail is empty: there is nothing to checkpoint")
    return row[0], row[1]


def _hash_at(session: Session, seq: int) -> str | None:
    return session.exec(select(AuditEvent.hash).where(AuditEvent.seq == seq)).first()


@audits_refusals(ACTION, entity="audit")
def write_checkpoint(
    session: Session, actor: Actor, *, clock: Clock, purpose: str = "on request"
) -> Checkpoint:
    """Append an ``audit.checkpoint`` event and sign a checkpoint that counts it, with the
    signing key the actor's sign-in unlocked (any signed-in user: a checkpoint says nothing
    about arms, only how long the trail is and its last hash). ``purpose`` says why (an
    export, the lock, on request). The caller writes the file once this transaction is
    committed."""
    trial = get_trial(session)
    key = actor.signing_key
    user = session.get(User, actor.user_id)
    if key is None or user is None or (
        key.public_key().public_bytes_raw() != user.signing_public_key
    ):
        raise PermissionDenied(f"{actor.name} holds no signing key of this account: sign "
                               "in again to write a signed checkpoint")
    fingerprint = key_fingerprint(key.public_key().public_bytes_raw())
    audit.record(
        session, actor, action=ACTION, entity="audit", entity_id=trial.trial_code,
        after={"signing_key": fingerprint}, reason=f"signed checkpoint ({purpose})",
        clock=clock,
    )
    session.flush()
    events, head = _head(session)
    first = _hash_at(session, 1)
    assert first is not None
    return sign_checkpoint(
        key, trial=trial.trial_code, first_event=first, events=events, head=head,
        at=audit.now(session, clock), signer=actor.name, role=actor.role.value,
    )


def recorded_signing_key(session: Session, user: str, at_seq: int) -> str | None:
    """The signing public key (hex) the trail records for ``user`` at event ``at_seq``, by
    the signature rules of ``domain.audit_signing`` (one rule: a key is introduced by its
    owner, replaced only under the old key), walking the trail up to that event."""
    walk = SignatureWalk()
    for fields, stored, signature in audit.iter_signed_chain(session, upto=at_seq):
        walk.step(fields, stored, signature)
    key = walk.key_at(user)
    return key.hex() if key else None


@dataclass(frozen=True)
class CheckpointCheck:
    """A checkpoint that holds, and anything a reader should know about it."""

    where: str
    checkpoint: Checkpoint
    note: str | None = None


def check_checkpoint(session: Session, checkpoint: Checkpoint, where: str) -> CheckpointCheck:
    """Check one checkpoint against the trail: it is this trial's (else bad input, exit 2);
    its signature holds, its key is the one the trail records for its signer then, and the
    trail still has its count of events with its head hash at that count (else
    :class:`IntegrityFailure`, exit 1, in one line)."""
    cp = checkpoint
    trial = get_trial(session)
    if cp.trial != trial.trial_code:
        raise InvalidInput(f"{where} is a checkpoint of trial {cp.trial!r}, not of "
                           f"{trial.trial_code!r}: nothing was checked against it")

    def failed(why: str, seq: int | None = None) -> IntegrityFailure:
        return IntegrityFailure(f"verification failed: checkpoint {where}: {why}",
                                details={"ok": False, "checkpoint": where,
                                         "first_bad_event": seq, "problem": why})

    if not signature_holds(cp):
        raise failed("its signature does not hold: the file was changed after it was signed")
    last = session.exec(select(AuditEvent.seq).order_by(col(AuditEvent.seq).desc())
                        .limit(1)).first()
    count = last or 0
    first = _hash_at(session, 1)
    if first != cp.first_event:
        raise failed("the trail's first event is not the one it records: it is another "
                     "trial's checkpoint, or the trail was rewritten from its start", 1)
    if count < cp.events:
        raise failed(f"it counts {cp.events} events but the trail holds {count}: events "
                     f"after {count} were removed", count + 1)
    if _hash_at(session, cp.events) != cp.head:
        raise failed(f"event {cp.events} no longer has the head hash {cp.head[:16]} it "
                     "signed: events up to it were removed, added or rewritten", cp.events)
    recorded = recorded_signing_key(session, cp.signer, cp.events)
    if recorded != cp.public_key:
        shown = key_fingerprint(bytes.fromhex(recorded)) if recorded else "none"
        raise failed(f"signed with key {key_fingerprint(bytes.fromhex(cp.public_key))}, but "
                     f"the trail records key {shown} for {cp.signer!r} at event {cp.events}",
                     cp.events)
    note = None
    user = session.exec(select(User).where(User.name == cp.signer)).first()
    current = user.signing_public_key.hex() if user and user.signing_public_key else None
    if current != cp.public_key:
        now_shown = key_fingerprint(bytes.fromhex(current)) if current else "none"
        note = (f"the database now records key {now_shown} for {cp.signer!r}, not the "
                f"checkpoint's {key_fingerprint(bytes.fromhex(cp.public_key))} (a new "
                "password since, or the key was replaced)")
    return CheckpointCheck(where, cp, note)
