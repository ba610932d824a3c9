"""Sealed allocation lists: sealing, extending, and claiming the next envelope.

Nothing here ever returns or logs an arm: sealing prints counts, claiming binds an
envelope the claimer cannot read. Only custodians open envelopes (see
``administration.custody``)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import canonical_json
from trialkit.domain.clock import Clock
from trialkit.domain.designs import PERMUTED_BLOCKS, Design, generate_segment, policy_of
from trialkit.domain.errors import InvalidInput, NextStep, Refused
from trialkit.domain.manifests import (
    Manifest,
    fingerprint,
    merkle_root_of,
    new_signing_key,
    sign_manifest,
)
from trialkit.domain.procedures import (
    RandomSource,
    SystemRandomSource,
    describe_policy,
)
from trialkit.domain.protocol import Protocol
from trialkit.domain.roles import Permission, Role
from trialkit.domain.sealed_blob import seal_blob
from trialkit.domain.sealing import (
    key_info,
    new_data_key,
    seal_envelopes,
    wrap_data_key,
)
from trialkit.domain.strata import Stratum as StratumDef
from trialkit.domain.strata import all_strata
from trialkit.services.actor import Actor, require
from trialkit.services.administration.custody import approved_custodians
from trialkit.services.administration.trial import stored_protocol
from trialkit.services.integrity import audit
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import AllocationList, Envelope, ListKeyGrant, Stratum, Trial, User

MAX_PER_STRATUM = 100_000
Progress = Callable[[int, int], None]


def list_snapshot(lst: AllocationList | Mapping[str, Any]) -> dict[str, Any]:
    """A list segment as the audit trail records it: the envelopes released (the count asked
    for), hashes and the protocol's design, never arms, the blocks drawn or how many envelopes
    the segment holds (whole blocks: that count, or where the segment starts, would show a
    block boundary). Takes the stored row or the column values about to be inserted."""
    row = lst if isinstance(lst, Mapping) else lst.__dict__
    if row["released"] is None:  # sealed before whole blocks: recorded as it was then
        return {
            "stratum": row["stratum_code"],
            "segment": row["segment"],
            "first_seq": row["first_seq"],
            "count": row["count"],
            "root": row["root"],
            "policy_hash": row["policy_hash"],
            "signing_key": fingerprint(row["signing_key"]),
        }
    return {
        "stratum": row["stratum_code"],
        "segment": row["segment"],
        "released": row["released"],
        "design": row["design"],
        "root": row["root"],
        "policy_hash": row["policy_hash"],
        "signing_key": fingerprint(row["signing_key"]),
    }


def released_in(lst: AllocationList) -> int:
    """Envelopes released by a segment's sealing or extension (all of a segment sealed
    before whole blocks were kept)."""
    return lst.count if lst.released is None else lst.released


def protocol_design(protocol: Protocol) -> dict[str, Any]:
    """The randomization design exactly as the protocol states it (nothing more): what a
    sealed list records in clear and the audit trail shows."""
    return protocol.allocation.design.describe()


@dataclass(frozen=True)
class SealedCount:
    stratum: str
    envelopes: int


@dataclass(frozen=True)
class SealResult:
    lists: tuple[SealedCount, ...]
    signing_key_fingerprint: str

    @property
    def total(self) -> int:
        return sum(c.envelopes for c in self.lists)


def _check_sizes(protocol: Protocol, block_sizes: Sequence[int] | None) -> Design:
    """The protocol's design. The protocol is the design: block sizes given on the command
    line may only repeat it (the lists must be made as the protocol says)."""
    design = protocol.allocation.design.check()
    ours = tuple(design.block_sizes)
    if not block_sizes:
        return design
    if design.procedure != PERMUTED_BLOCKS:
        raise InvalidInput(
            f"the protocol's design is {design.label()}: block sizes do not apply to it"
        )
    describe_policy(block_sizes, protocol.allocation.ratio)  # raises InvalidInput on a bad set
    if sorted(block_sizes) != sorted(ours):
        given = ", ".join(str(b) for b in block_sizes)
        theirs = ", ".join(str(b) for b in sorted(ours))
        raise InvalidInput(
            f"block sizes {given} differ from the protocol's ({theirs}): the lists follow the "
            "protocol's design; to change it, amend the protocol"
        )
    return design


def _check_count(n: int) -> None:
    if not 1 <= n <= MAX_PER_STRATUM:
        raise InvalidInput(f"envelopes per stratum: {n} is not between 1 and {MAX_PER_STRATUM}")


def _padded(record: bytes, n: int, ratio: Sequence[int]) -> bytes:
    """Pad the sealed procedure to a length that depends only on public facts (the count
    and the ratio): its ciphertext length must not hint at how many blocks there are."""
    most_blocks = -(-n // sum(ratio))
    target = 512 + 4 * most_blocks
    if len(record) > target:
        raise InvalidInput("block sizes: too many or too large to seal")
    return record + b" " * (target - len(record))


def _ensure_strata(session: Session, strata: list[StratumDef]) -> None:
    existing = set(session.exec(select(Stratum.code)).all())
    missing = [
        {"code": s.code, "site_code": s.site or None, "levels_json": dict(s.levels)}
        for s in strata
        if s.code not in existing
    ]
    if missing:
        session.flush()
        session.connection().execute(insert(Stratum), missing)


@dataclass
class _Segment:
    """One sealed list segment, ready to be stored in bulk: the list row's column values,
    the envelope rows (list id, stratum, seq, ciphertext, commitment) and the key grants."""

    row: dict[str, Any]
    envelopes: list[tuple[str, str, int, bytes, str]]
    grants: list[dict[str, Any]]


def _seal_segment(
    actor: Actor,
    *,
    protocol: Protocol,
    stratum: str,
    segment: int,
    first_seq: int,
    n: int,
    held: int = 0,
    design: Design,
    custodians: list[User],
    recovery_public_key: bytes | None,
    signer: tuple[Ed25519PrivateKey, bytes],
    rng: RandomSource,
    clock: Clock,
) -> _Segment:
    """Seal whole blocks releasing ``n`` envelopes, the ``held`` (sealed, not yet released)
    ones of earlier segments first: the segment covers the rest, and at least one block (for
    the procedures without blocks: until the arms are balanced again), so every extension
    looks the same whatever was held. What it holds beyond that stays sealed and held back
    for the next extension, so no block is ever cut short."""
    list_id = secrets.token_hex(8)
    drawn = generate_segment(design, max(n - held, 1), rng)
    arms = [protocol.arm_codes[i] for i in drawn.arms]
    data_key = new_data_key()
    policy = policy_of(design) | {
        "salt": secrets.token_hex(16),  # without it, the few possible policies could be hashed
        "blocks": list(drawn.blocks),
    }
    policy_bytes = _padded(canonical_json(policy).encode(), n, protocol.allocation.ratio)
    sealed = seal_envelopes(data_key, list_id, stratum, first_seq, arms)
    envelopes = [
        (list_id, stratum, first_seq + i, e.ciphertext, e.commitment)
        for i, e in enumerate(sealed)
    ]
    leaves = [e.leaf for e in sealed]
    policy_hash = hashlib.sha256(policy_bytes).hexdigest()
    manifest = Manifest(list_id, stratum, len(arms), policy_hash, merkle_root_of(leaves))
    row = {
        "id": list_id,
        "stratum_code": stratum,
        "segment": segment,
        "first_seq": first_seq,
        "count": len(arms),
        "released": n,
        "design": protocol_design(protocol),
        "sealed_policy": seal_blob(data_key, policy_bytes, list_id.encode()),
        "policy_hash": policy_hash,
        "root": manifest.root,
        "leaves": b"".join(leaves),
        "signature": sign_manifest(signer[0], manifest),
        "signing_key": signer[1],
        "created_at": clock.now(),
        "created_by": actor.name,
        # the sponsor's recovery sheet opens it too (trials made before it had none)
        "recovery_key": wrap_data_key(data_key, recovery_public_key, key_info(list_id))
        if recovery_public_key is not None
        else None,
    }
    grants = [
        {
            "list_id": list_id,
            "user_id": u.id,
            "wrapped_key": wrap_data_key(data_key, u.public_key, key_info(list_id)),
        }
        for u in custodians
        if u.public_key is not None
    ]
    return _Segment(row, envelopes, grants)


def _store(session: Session, actor: Actor, segments: list[_Segment], clock: Clock) -> None:
    """Insert sealed segments with Core bulk inserts (the ORM unit of work costs more than
    the cryptography here), then audit each list."""
    conn = session.connection()
    conn.execute(insert(AllocationList), [seg.row for seg in segments])
    envelope_columns = ("list_id", "stratum_code", "seq", "ciphertext", "commitment")
    envelopes = [dict(zip(envelope_columns, e, strict=True)) for g in segments for e in g.envelopes]
    conn.execute(insert(Envelope), envelopes)
    grants = [g for s in segments for g in s.grants]
    if grants:
        conn.execute(insert(ListKeyGrant), grants)
    changes = [
        audit.Change(
            action="list.seal" if seg.row["segment"] == 1 else "list.extend",
            entity="list",
            entity_id=seg.row["id"],
            after=list_snapshot(seg.row),
        )
        for seg in segments
    ]
    audit.record_many(session, actor, changes, clock=clock)


def _openers(session: Session) -> list[User]:
    """The approved custodians a new list is wrapped to; refused without an approved, active
    pharmacist (their key is what opens the envelopes): envelopes nobody could open, or
    only someone an admin chose, are never sealed."""
    custodians = approved_custodians(session)
    if not any(u.role == Role.PHARMACIST.value for u in custodians):
        raise Refused(
            "no approved pharmacist yet: add one, let them activate their account, and have "
            "an investigator approve them: their key is what opens the envelopes",
            next_step=NextStep("approve-custodian", "NAME"),
        )
    return custodians


def recovery_public_key(session: Session) -> bytes | None:
    """The public half of the trial's recovery key (None for a trial made before it)."""
    trial = session.get(Trial, 1)
    return None if trial is None else trial.recovery_public_key


@audits_refusals("list.seal", entity="allocation_list")
def seal_lists(
    session: Session,
    actor: Actor,
    *,
    per_stratum: int,
    block_sizes: Sequence[int] | None,
    clock: Clock,
    rng: RandomSource | None = None,
    progress: Progress | None = None,
) -> SealResult:
    """Generate and seal one list per stratum; refused until a pharmacist custodian exists."""
    require(actor, Permission.SEAL_LISTS)
    protocol = stored_protocol(session)
    design = _check_sizes(protocol, block_sizes)
    _check_count(per_stratum)
    custodians = _openers(session)
    if session.exec(select(AllocationList.id).limit(1)).first() is not None:
        raise Refused("the lists are already sealed: extend a stratum instead",
                      next_step=NextStep("extend-list", "STRATUM"))
    signer = new_signing_key()
    strata = all_strata(protocol)
    _ensure_strata(session, strata)
    source = rng or SystemRandomSource()
    segments: list[_Segment] = []
    for i, s in enumerate(strata):
        segments.append(
            _seal_segment(
                actor,
                protocol=protocol,
                stratum=s.code,
                segment=1,
                first_seq=1,
                n=per_stratum,
                design=design,
                custodians=custodians,
                recovery_public_key=recovery_public_key(session),
                signer=signer,
                rng=source,
                clock=clock,
            )
        )
        if progress:
            progress(i + 1, len(strata))
    _store(session, actor, segments, clock)
    counts = [SealedCount(seg.row["stratum_code"], seg.row["released"]) for seg in segments]
    return SealResult(tuple(counts), fingerprint(signer[1]))


@audits_refusals("list.extend", entity="stratum", entity_id="stratum")
def extend_list(
    session: Session,
    actor: Actor,
    *,
    stratum: str,
    count: int,
    block_sizes: Sequence[int] | None,
    clock: Clock,
    rng: RandomSource | None = None,
) -> SealResult:
    """Release ``count`` more envelopes in a stratum: first those sealed beyond the count
    asked for before (whole blocks), then from whole new blocks appended under a new data
    key. Existing envelopes are neither read nor changed, and numbering continues after the
    last one."""
    require(actor, Permission.SEAL_LISTS)
    protocol = stored_protocol(session)
    design = _check_sizes(protocol, block_sizes)
    _check_count(count)
    code = stratum.strip().upper()
    known = [s.code for s in all_strata(protocol)]
    if code not in known:
        raise InvalidInput(f"unknown stratum {stratum!r}: strata are {', '.join(known)}")
    if session.get(Stratum, code) is None:
        raise Refused("the allocation lists are not sealed yet: seal them first",
                      next_step=NextStep("seal-lists", ""))
    session.exec(select(Stratum).where(Stratum.code == code).with_for_update()).one()
    last_seq, last_segment = session.exec(
        select(func.max(Envelope.seq), func.max(AllocationList.segment))
        .select_from(AllocationList)
        .join(Envelope, col(Envelope.list_id) == col(AllocationList.id))
        .where(AllocationList.stratum_code == code)
    ).one()
    held = (last_seq or 0) - released_total(session, code)
    custodians = _openers(session)
    signer = new_signing_key()
    seg = _seal_segment(
        actor,
        protocol=protocol,
        stratum=code,
        segment=(last_segment or 0) + 1,
        first_seq=(last_seq or 0) + 1,
        n=count,
        held=held,
        design=design,
        custodians=custodians,
        recovery_public_key=recovery_public_key(session),
        signer=signer,
        rng=rng or SystemRandomSource(),
        clock=clock,
    )
    _store(session, actor, [seg], clock)
    return SealResult((SealedCount(code, count),), fingerprint(signer[1]))


@dataclass(frozen=True)
class StratumUse:
    """Envelopes per stratum, as an admin sees them (never sizes or arms). ``sealed`` counts
    the released envelopes only: how many more are sealed but held back would show where a
    block ends."""

    stratum: str
    sealed: int
    used: int

    @property
    def left(self) -> int:
        return self.sealed - self.used


def _released_column() -> Any:
    return func.coalesce(AllocationList.released, AllocationList.count)


def released_total(session: Session, stratum: str) -> int:
    """How many of a stratum's envelopes are released: its first ones, in sequence."""
    total = session.exec(
        select(func.sum(_released_column())).where(AllocationList.stratum_code == stratum)
    ).one()
    return int(total or 0)


@audits_refusals("list.usage", entity="allocation_list")
def stratum_usage(session: Session, actor: Actor) -> list[StratumUse]:
    """Released, used and left envelopes per stratum."""
    require(actor, Permission.READ_STATUS)
    sealed = dict(
        session.exec(
            select(AllocationList.stratum_code, func.sum(_released_column()))
            .group_by(col(AllocationList.stratum_code))
        ).all()
    )
    used = dict(
        session.exec(
            select(Envelope.stratum_code, func.count())
            .where(col(Envelope.participant_id).is_not(None))
            .group_by(col(Envelope.stratum_code))
        ).all()
    )
    strata = [s.code for s in all_strata(stored_protocol(session))]
    return [StratumUse(code, int(sealed.get(code, 0)), int(used.get(code, 0))) for code in strata]


def released_bound(stratum: Any) -> Any:
    """The highest sequence number that may be claimed in ``stratum`` (a column or value),
    as a scalar subquery: the stratum's released envelopes are its first ones."""
    return (
        select(func.coalesce(func.sum(_released_column()), 0))
        .where(AllocationList.stratum_code == stratum)
        .scalar_subquery()
    )


def claim_next(session: Session, stratum: str) -> Envelope | None:
    """The stratum's lowest unused released envelope (None when none is left), for the
    caller to bind in the same transaction. The caller's write transaction holds the
    database's write lock (BEGIN IMMEDIATE on SQLite, the advisory write lock on PostgreSQL),
    so no other transaction can claim between this read and the commit."""
    return session.exec(
        select(Envelope)
        .where(Envelope.stratum_code == stratum)
        .where(col(Envelope.participant_id).is_(None))
        .where(col(Envelope.seq) <= released_bound(stratum))
        .order_by(col(Envelope.seq))
        .limit(1)
    ).first()
