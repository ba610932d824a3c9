"""Opening the sealed procedure after the database lock: for every list segment, the
design it was sealed with and the blocks drawn (their sizes and where each begins and
ends). For custodians only, after the lock, audited; it names no arm (the randomization
report adds the arms)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.errors import (
    IntegrityFailure,
    InvalidInput,
    NextStep,
    PermissionDenied,
    Refused,
)
from trialkit.domain.sealed_blob import open_blob
from trialkit.domain.sealing import key_info, unwrap_data_key
from trialkit.services.actor import Actor
from trialkit.services.administration.custody import custodian_private_key
from trialkit.services.administration.trial import trial_time
from trialkit.services.enrolment.allocation import released_in
from trialkit.services.integrity import audit
from trialkit.store.models import AllocationList, ListKeyGrant, Trial


class ProcedureRefused(PermissionDenied):
    """Opening the sealed procedure refused (not a custodian, or before the lock); the
    refusal is audited."""

    keep_record = True


@dataclass(frozen=True)
class BlockDrawn:
    """One block as drawn: its size and the sequence numbers it spans (inclusive)."""

    first_seq: int
    last_seq: int
    size: int


@dataclass(frozen=True)
class SegmentProcedure:
    """One sealed segment's procedure, as opened by a custodian after the lock."""

    stratum: str
    segment: int
    list_id: str
    first_seq: int
    count: int  # envelopes the segment holds (whole blocks)
    released: int  # envelopes its sealing or extension released
    procedure: dict[str, Any]  # procedure, ratio, block sizes, generator
    blocks: tuple[BlockDrawn, ...]
    sealed_at: datetime  # in the trial's local time (site_time)
    sealed_by: str


def _refuse(session: Session, actor: Actor, why: str, clock: Clock) -> ProcedureRefused:
    audit.record(session, actor, action="procedure.refused", entity="procedure",
                 entity_id="sealed lists", reason=why, clock=clock)
    return ProcedureRefused(f"opening the sealed lists is refused: {why}")


def _blocks(first_seq: int, sizes: list[int]) -> tuple[BlockDrawn, ...]:
    blocks: list[BlockDrawn] = []
    at = first_seq
    for size in sizes:
        blocks.append(BlockDrawn(at, at + size - 1, size))
        at += size
    return tuple(blocks)


@dataclass(frozen=True)
class OpenedList:
    """A list segment opened by a custodian: its row, data key, procedure and blocks."""

    row: AllocationList
    data_key: bytes
    procedure: dict[str, Any]
    blocks: tuple[int, ...]  # the block sizes drawn (permuted blocks), else empty
    released: int


def open_lists(
    session: Session, actor: Actor, *, password: str, clock: Clock, purpose: str
) -> list[OpenedList]:
    """Every list segment opened with the actor's custodian key, in stratum and segment
    order: after the database lock, for a custodian with their password. The opening is
    audited with its ``purpose``; a refusal is audited too."""
    trial = session.get(Trial, 1)
    if trial is None or trial.locked_at is None:
        raise _refuse(session, actor, "the database is not locked yet (an investigator locks "
                      "it)", clock)
    if not actor.custodian:
        raise _refuse(session, actor, f"{actor.name} is not an unblinding custodian", clock)
    if not password:
        raise InvalidInput(f"the {purpose} needs your password (it unlocks your custodian key)")
    private = custodian_private_key(session, actor, password)
    lists = session.exec(
        select(AllocationList).order_by(col(AllocationList.stratum_code),
                                        col(AllocationList.segment))
    ).all()
    opened: list[OpenedList] = []
    for lst in lists:
        grant = session.get(ListKeyGrant, (lst.id, actor.user_id))
        if grant is None:
            raise Refused(
                f"{actor.name} holds no key to the list of {lst.stratum_code}: a second "
                "person approves them first, which hands it over",
                next_step=NextStep("approve-custodian", actor.name),
            )
        data_key = unwrap_data_key(grant.wrapped_key, private, key_info(lst.id))
        try:
            policy = json.loads(open_blob(data_key, lst.sealed_policy, lst.id.encode()))
            sizes = tuple(int(b) for b in policy.pop("blocks", []))
        except (ValueError, TypeError) as err:
            raise IntegrityFailure(f"the sealed procedure of list {lst.id} is malformed") from err
        policy.pop("salt", None)
        if sizes and sum(sizes) != lst.count:
            raise IntegrityFailure(
                f"the sealed procedure of list {lst.id} does not add up to its envelopes"
            )
        opened.append(OpenedList(lst, data_key, policy, sizes, released_in(lst)))
    audit.record(session, actor, action="procedure.open", entity="procedure",
                 entity_id="sealed lists", reason=purpose, clock=clock)
    return opened


def open_procedures(
    session: Session, actor: Actor, *, password: str, clock: Clock
) -> list[SegmentProcedure]:
    """Every segment's sealed procedure, in stratum and segment order (custodian, after the
    database lock, with their password)."""
    opened = open_lists(session, actor, password=password, clock=clock,
                        purpose="the sealed procedure")
    local = trial_time(session)
    return [
        SegmentProcedure(
            o.row.stratum_code, o.row.segment, o.row.id, o.row.first_seq, o.row.count,
            o.released, o.procedure, _blocks(o.row.first_seq, list(o.blocks)),
            local.local(o.row.created_at), o.row.created_by,
        )
        for o in opened
    ]
