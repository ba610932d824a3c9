"""Sealed allocation lists: sealing, extending, and claiming the next envelope.

Nothing here ever returns or logs an arm: sealing prints counts, claiming binds an
envelope the claimer cannot read. Only custodians open envelopes (see custody.py)."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import canonical_json
from trialkit.domain.clock import Clock
from trialkit.domain.errors import InvalidInput, Refused
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
    flatten,
    generate_blocks,
)
from trialkit.domain.protocol import Protocol
from trialkit.domain.roles import Permission, Role
from trialkit.domain.sealed_blob import seal_blob
from trialkit.domain.sealing import (
    new_data_key,
    seal_envelopes,
    wrap_data_key,
)
from trialkit.domain.strata import Stratum as StratumDef
from trialkit.domain.strata import all_strata
from trialkit.services import audit
from trialkit.services.actor import Actor, require
from trialkit.services.trial import stored_protocol
from trialkit.store.models import AllocationList, Envelope, Stratum, User

MAX_PER_STRATUM = 100_000
Progress = Callable[[int, int], None]


def key_info(list_id: str) -> bytes:
    """HPKE ``info`` binding a wrapped data key to its list."""
    return f"trialkit list data key {list_id}".encode()


def list_snapshot(lst: AllocationList | Mapping[str, Any]) -> dict[str, Any]:
    """A list segment as the audit trail records it: counts and hashes, never arms or sizes.
    Takes the stored row or the column values about to be inserted."""
    row = lst if isinstance(lst, Mapping) else lst.__dict__
    return {
        "stratum": row["stratum_code"],
        "segment": row["segment"],
        "first_seq": row["first_seq"],
        "count": row["count"],
        "root": row["root"],
        "policy_hash": row["policy_hash"],
        "signing_key": fingerprint(row["signing_key"]),
    }


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


def _custodians(session: Session) -> list[User]:
    users = session.exec(
        select(User).where(col(User.custodian)).where(col(User.disabled).is_(False))
    ).all()
    return [u for u in users if u.public_key is not None]


def _check_sizes(protocol: Protocol, block_sizes: Sequence[int] | None) -> tuple[int, ...]:
    sizes = tuple(block_sizes) if block_sizes else tuple(protocol.allocation.block_sizes)
    describe_policy(sizes, protocol.allocation.ratio)  # raises InvalidInput on a bad set
    return sizes


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
        {"code": s.code, "site_code": s.site, "levels_json": json.dumps(dict(s.levels))}
        for s in strata
        if s.code not in existing
    ]
    if missing:
        session.flush()
        _insert_plain(session, "stratum", ("code", "site_code", "levels_json"), missing)


def _insert_plain(
    session: Session, table: str, columns: tuple[str, ...], rows: Sequence[Any]
) -> None:
    """Bulk insert of columns that need no type conversion (text, integers, bytes) straight
    through the driver: for thousands of rows SQLAlchemy's per-row processing costs more than
    the insert. ``rows`` are tuples in column order, or dicts keyed by column."""
    if not rows:
        return
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    values = [tuple(r[c] for c in columns) if isinstance(r, dict) else r for r in rows]
    conn.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
        values,
    )


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
    sizes: tuple[int, ...],
    custodians: list[User],
    signer: tuple[Ed25519PrivateKey, bytes],
    rng: RandomSource,
    clock: Clock,
) -> _Segment:
    list_id = secrets.token_hex(8)
    blocks = generate_blocks(protocol.arm_codes, protocol.allocation.ratio, sizes, n, rng)
    # Exactly n envelopes: a count made of whole blocks would hint at the block sizes to the
    # blinded admin who reads it. The cut block is simply never completed, as at trial end.
    arms = flatten(blocks)[:n]
    data_key = new_data_key()
    policy = describe_policy(sizes, protocol.allocation.ratio) | {
        "salt": secrets.token_hex(16),  # without it, the few possible policies could be hashed
        "blocks": [b.size for b in blocks],
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
        "sealed_policy": seal_blob(data_key, policy_bytes, list_id.encode()),
        "policy_hash": policy_hash,
        "root": manifest.root,
        "leaves": b"".join(leaves),
        "signature": sign_manifest(signer[0], manifest),
        "signing_key": signer[1],
        "created_at": clock.now(),
        "created_by": actor.name,
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
    table = AllocationList.__table__  # type: ignore[attr-defined]
    conn.execute(insert(table), [seg.row for seg in segments])
    envelope_columns = ("list_id", "stratum_code", "seq", "ciphertext", "commitment")
    _insert_plain(session, "envelope", envelope_columns, [e for g in segments for e in g.envelopes])
    grant_columns = ("list_id", "user_id", "wrapped_key")
    _insert_plain(session, "list_key_grant", grant_columns, [g for s in segments for g in s.grants])
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
    sizes = _check_sizes(protocol, block_sizes)
    _check_count(per_stratum)
    custodians = _custodians(session)
    if not any(u.role == Role.PHARMACIST.value for u in custodians):
        raise Refused("no pharmacist yet: add one first, their key is what opens the envelopes")
    if session.exec(select(AllocationList.id).limit(1)).first() is not None:
        raise Refused("the lists are already sealed; extend a stratum with --extend STRATUM")
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
                sizes=sizes,
                custodians=custodians,
                signer=signer,
                rng=source,
                clock=clock,
            )
        )
        if progress:
            progress(i + 1, len(strata))
    _store(session, actor, segments, clock)
    counts = [SealedCount(seg.row["stratum_code"], seg.row["count"]) for seg in segments]
    return SealResult(tuple(counts), fingerprint(signer[1]))


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
    """Append whole new blocks to a stratum under a new data key; existing envelopes are
    neither read nor touched, and numbering continues after the last one."""
    require(actor, Permission.SEAL_LISTS)
    protocol = stored_protocol(session)
    sizes = _check_sizes(protocol, block_sizes)
    _check_count(count)
    code = stratum.strip().upper()
    known = [s.code for s in all_strata(protocol)]
    if code not in known:
        raise InvalidInput(f"unknown stratum {stratum!r}: strata are {', '.join(known)}")
    if session.get(Stratum, code) is None:
        raise Refused("the allocation lists are not sealed yet: seal them first (trialkit seal)")
    session.exec(select(Stratum).where(Stratum.code == code).with_for_update()).one()
    last_seq, last_segment = session.exec(
        select(func.max(Envelope.seq), func.max(AllocationList.segment))
        .select_from(AllocationList)
        .join(Envelope, col(Envelope.list_id) == col(AllocationList.id))
        .where(AllocationList.stratum_code == code)
    ).one()
    custodians = _custodians(session)
    signer = new_signing_key()
    seg = _seal_segment(
        actor,
        protocol=protocol,
        stratum=code,
        segment=(last_segment or 0) + 1,
        first_seq=(last_seq or 0) + 1,
        n=count,
        sizes=sizes,
        custodians=custodians,
        signer=signer,
        rng=rng or SystemRandomSource(),
        clock=clock,
    )
    _store(session, actor, [seg], clock)
    return SealResult((SealedCount(code, seg.row["count"]),), fingerprint(signer[1]))


@dataclass(frozen=True)
class StratumUse:
    """Envelopes per stratum, as an admin sees them (never sizes or arms)."""

    stratum: str
    sealed: int
    used: int

    @property
    def left(self) -> int:
        return self.sealed - self.used


def stratum_usage(session: Session, actor: Actor) -> list[StratumUse]:
    """Sealed, used and left envelopes per stratum."""
    require(actor, Permission.READ_STATUS)
    sealed = dict(
        session.exec(
            select(Envelope.stratum_code, func.count()).group_by(col(Envelope.stratum_code))
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


def claim_next(session: Session, stratum: str) -> Envelope | None:
    """The stratum's lowest unused envelope (None when exhausted), for the caller to bind in
    the same transaction. The caller's write transaction holds the database's write lock
    (BEGIN IMMEDIATE on SQLite, the advisory write lock on PostgreSQL), so no other
    transaction can claim between this read and the commit."""
    return session.exec(
        select(Envelope)
        .where(Envelope.stratum_code == stratum)
        .where(col(Envelope.participant_id).is_(None))
        .order_by(col(Envelope.seq))
        .limit(1)
    ).first()
