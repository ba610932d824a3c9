"""``list verify``: every list segment's signature, its envelopes against the signed
commitments, and its signing key against the one the audit trail recorded at sealing."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlmodel import Session, col, select

from trialkit.domain.errors import IntegrityFailure
from trialkit.domain.manifests import (
    Manifest,
    fingerprint,
    merkle_root_of,
    verify_manifest,
)
from trialkit.domain.sealing import (
    envelope_leaf,
)
from trialkit.services.enrolment.allocation import released_in
from trialkit.store.models import AllocationList, AuditEvent, Envelope

LEAF_LEN = 32


@dataclass(frozen=True)
class ListCheck:
    """One segment's verification; ``envelopes`` counts the envelopes its sealing or
    extension released (never how many it holds)."""

    list_id: str
    stratum: str
    envelopes: int
    problem: str | None = None


def _audited_key(session: Session, list_id: str) -> str | None:
    after = session.exec(
        select(AuditEvent.after_json)
        .where(AuditEvent.entity == "list", AuditEvent.entity_id == list_id)
        .order_by(col(AuditEvent.seq))
        .limit(1)
    ).first()
    return None if after is None else str(json.loads(after).get("signing_key"))


def _raw(commitment_hex: str) -> bytes:
    try:
        return bytes.fromhex(commitment_hex)
    except ValueError:  # an edited commitment that is not even hex: it cannot match its leaf
        return commitment_hex.encode()


def check_list(session: Session, lst: AllocationList) -> str | None:
    """The first problem with one list segment, or None."""
    manifest = Manifest(lst.id, lst.stratum_code, lst.count, lst.policy_hash, lst.root)
    try:
        verify_manifest(lst.signing_key, manifest, lst.signature)
    except IntegrityFailure:
        return "its signed manifest does not verify (count, root or procedure changed)"
    if _audited_key(session, lst.id) != fingerprint(lst.signing_key):
        return "its signing key is not the one recorded in the audit trail when it was sealed"
    leaves = [lst.leaves[i : i + LEAF_LEN] for i in range(0, len(lst.leaves), LEAF_LEN)]
    if len(leaves) != lst.count or merkle_root_of(leaves) != lst.root:
        return "its stored commitments do not match the signed manifest"
    envelopes = session.exec(
        select(Envelope.seq, Envelope.commitment, Envelope.ciphertext)
        .where(Envelope.list_id == lst.id)
        .order_by(col(Envelope.seq))
    ).all()
    expected = lst.first_seq
    for (seq, digest, ciphertext), leaf in zip(envelopes, leaves, strict=False):
        if seq != expected:
            return f"envelope {lst.stratum_code} #{expected} is missing"
        if envelope_leaf(_raw(digest), ciphertext) != leaf:
            return f"envelope {lst.stratum_code} #{seq} was changed after sealing"
        expected += 1
    if len(envelopes) < lst.count:
        return f"envelope {lst.stratum_code} #{lst.first_seq + len(envelopes)} is missing"
    if len(envelopes) > lst.count:
        extra = lst.first_seq + lst.count
        return f"envelope {lst.stratum_code} #{extra} was added after sealing"
    return None


def verify_lists(session: Session) -> list[ListCheck]:
    """Check every list segment, every envelope of it, released or not; anyone may run this
    (it shows no arm or block size). The counts it reports are of released envelopes: how
    many more each list holds back would show where a block ends."""
    lists = session.exec(
        select(AllocationList).order_by(
            col(AllocationList.stratum_code), col(AllocationList.segment)
        )
    ).all()
    checks = [
        ListCheck(lst.id, lst.stratum_code, released_in(lst), check_list(session, lst))
        for lst in lists
    ]
    held: dict[str, int] = {}  # per stratum: envelopes sealed minus released, in list order
    for i, lst in enumerate(lists):
        held[lst.stratum_code] = held.get(lst.stratum_code, 0) + lst.count - released_in(lst)
        if held[lst.stratum_code] < 0 and checks[i].problem is None:
            problem = "it releases more envelopes than its stratum's lists hold"
            checks[i] = ListCheck(lst.id, lst.stratum_code, checks[i].envelopes, problem)
    return checks
