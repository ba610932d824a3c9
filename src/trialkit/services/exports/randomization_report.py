"""The randomization report after the database lock (SPIRIT 16a; the randomization must
be reconstructable): per stratum every envelope in sequence order with its arm, its block
(permuted blocks) or its run between two balance points (the other procedures), whether it
was released, and whether, when, to whom and by whom it was used; per list segment the
procedure, who sealed it and when, its manifest fingerprint and the result of verifying it;
the generator. Custodians only, after the lock, with their password; audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.manifests import fingerprint
from trialkit.domain.sealing import open_envelope, parse_envelope_plaintext
from trialkit.services.actor import Actor
from trialkit.services.administration.trial import stored_protocol
from trialkit.services.exports.sealed_procedure import OpenedList, open_lists
from trialkit.services.integrity.list_verification import check_list
from trialkit.store.models import AuditEvent, Envelope, Participant

GENERATOR_VERSION = "trialkit designs v1 (secrets CSPRNG, exact rational draws)"


@dataclass(frozen=True)
class SegmentLine:
    """One sealed list segment as the report shows it."""

    stratum: str
    segment: int
    list_id: str
    first_seq: int
    envelopes: int
    released: int
    procedure: dict[str, Any]
    sealed_at: datetime
    sealed_by: str
    manifest_fingerprint: str
    root: str
    verified: str  # "ok" or the problem found


@dataclass(frozen=True)
class EnvelopeLine:
    """One envelope, in stratum and sequence order. UNBLINDED."""

    stratum: str
    seq: int
    segment: int
    list_id: str
    block: int  # 1, 2, ... within the stratum
    block_size: int
    position: int  # 1-based place in its block
    arm_code: str
    arm_name: str
    released: bool
    participant_id: str | None
    randomization_number: str | None
    randomized_at: datetime | None
    randomized_by: str | None


@dataclass(frozen=True)
class RandomizationReport:
    trial: str
    generated_at: datetime
    generated_by: str
    generator: str
    segments: tuple[SegmentLine, ...]
    envelopes: tuple[EnvelopeLine, ...]


def _runs(arms: list[str], codes: tuple[str, ...], ratio: tuple[int, ...]) -> list[int]:
    """Lengths of the runs between balance points (counts in the ratio) of a sequence."""
    runs, counts, start = [], dict.fromkeys(codes, 0), 0
    for i, arm in enumerate(arms):
        counts[arm] += 1
        units = counts[codes[0]] / ratio[0]
        if all(counts[c] == units * r for c, r in zip(codes, ratio, strict=True)):
            runs.append(i + 1 - start)
            start = i + 1
    if start < len(arms):
        runs.append(len(arms) - start)
    return runs


def randomization_report(
    session: Session, actor: Actor, *, password: str, clock: Clock
) -> RandomizationReport:
    """The report (see the module's description); refused before the lock or to anyone but
    a custodian, and audited either way."""
    opened = open_lists(session, actor, password=password, clock=clock,
                        purpose="randomization report")
    protocol = stored_protocol(session)
    names = {a.code: a.name for a in protocol.arms}
    people = {p.id: p for p in session.exec(
        select(Participant).where(col(Participant.randomization_number).is_not(None)))}
    by_whom = dict(session.exec(
        select(AuditEvent.entity_id, AuditEvent.user_name)
        .where(AuditEvent.action == "participant.randomize")).all())
    released_total: dict[str, int] = {}
    for o in opened:
        released_total[o.row.stratum_code] = released_total.get(o.row.stratum_code, 0) + (
            o.released)
    segments: list[SegmentLine] = []
    lines: list[EnvelopeLine] = []
    by_stratum: dict[str, list[OpenedList]] = {}
    for o in opened:
        by_stratum.setdefault(o.row.stratum_code, []).append(o)
        problem = check_list(session, o.row)
        segments.append(SegmentLine(
            o.row.stratum_code, o.row.segment, o.row.id, o.row.first_seq, o.row.count,
            o.released, o.procedure, o.row.created_at, o.row.created_by,
            fingerprint(o.row.signing_key), o.row.root, problem or "ok"))
    for stratum, parts in by_stratum.items():
        block_no = 0
        for o in parts:
            rows = session.exec(select(Envelope).where(Envelope.list_id == o.row.id)
                                .order_by(col(Envelope.seq))).all()
            arms = [parse_envelope_plaintext(open_envelope(
                o.data_key, e.ciphertext, o.row.id, stratum, e.seq)).arm_code for e in rows]
            sizes = list(o.blocks) or _runs(arms, protocol.arm_codes, protocol.allocation.ratio)
            at = 0
            for size in sizes:
                block_no += 1
                for pos in range(size):
                    e, arm = rows[at], arms[at]
                    p = people.get(e.participant_id or "")
                    lines.append(EnvelopeLine(
                        stratum, e.seq, o.row.segment, o.row.id, block_no, size, pos + 1,
                        arm, names.get(arm, arm), e.seq <= released_total[stratum],
                        e.participant_id, p.randomization_number if p else None,
                        p.randomized_at if p else None,
                        by_whom.get(e.participant_id) if e.participant_id else None))
                    at += 1
    return RandomizationReport(protocol.trial.id, clock.now(), actor.name, GENERATOR_VERSION,
                               tuple(segments), tuple(lines))


CSV_COLUMNS = (
    "stratum", "seq", "segment", "list_id", "block", "block_size", "position_in_block",
    "arm", "arm_name", "released", "participant_id", "randomization_number", "randomized_at",
    "randomized_by", "procedure", "sealed_at", "sealed_by", "manifest_fingerprint",
    "verified", "generator",
)


def csv_rows(report: RandomizationReport) -> list[list[str]]:
    """One row per envelope, with its segment's procedure, sealing and verification, so the
    file alone is what a stratified-by-block analysis needs."""
    import json

    seg = {(s.stratum, s.segment): s for s in report.segments}
    out = []
    for e in report.envelopes:
        s = seg[(e.stratum, e.segment)]
        out.append([
            e.stratum, str(e.seq), str(e.segment), e.list_id, str(e.block), str(e.block_size),
            str(e.position), e.arm_code, e.arm_name, "yes" if e.released else "no",
            e.participant_id or "", e.randomization_number or "",
            e.randomized_at.isoformat() if e.randomized_at else "", e.randomized_by or "",
            json.dumps(s.procedure, sort_keys=True), s.sealed_at.isoformat(), s.sealed_by,
            s.manifest_fingerprint, s.verified, report.generator,
        ])
    return out
