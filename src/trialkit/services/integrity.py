"""``audit verify``: the hash chain, plus a check that every audited entity still matches
the state its latest audit event recorded, so a direct edit of a table (or the deletion of
the audit event that explains it) is caught too."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import canonical_json
from trialkit.domain.strata import all_strata
from trialkit.services import audit
from trialkit.services.allocation import list_snapshot
from trialkit.services.diary_audit import diary_states
from trialkit.services.enrolment import participant_snapshot
from trialkit.services.list_integrity import verify_lists
from trialkit.services.preparations import audit_key, preparation_snapshot
from trialkit.services.trial import stored_protocol, trial_snapshot
from trialkit.services.users import user_snapshot
from trialkit.store.models import (
    AllocationList,
    AuditEvent,
    Envelope,
    Participant,
    Preparation,
    Stratum,
    Trial,
    User,
)
from trialkit.store.schema import append_only_problems

StateReader = Callable[[Session], dict[str, dict[str, Any]]]


def _users(session: Session) -> dict[str, dict[str, Any]]:
    return {u.name: user_snapshot(session, u) for u in session.exec(select(User)).all()}


def _trial(session: Session) -> dict[str, dict[str, Any]]:
    trial = session.get(Trial, 1)
    if trial is None:
        return {}
    return {trial.trial_code: trial_snapshot(session, trial)}


def _participants(session: Session) -> dict[str, dict[str, Any]]:
    return {p.id: participant_snapshot(session, p) for p in session.exec(select(Participant))}


def _lists(session: Session) -> dict[str, dict[str, Any]]:
    return {lst.id: list_snapshot(lst) for lst in session.exec(select(AllocationList))}


def _preparations(session: Session) -> dict[str, dict[str, Any]]:
    return {audit_key(p): preparation_snapshot(p) for p in session.exec(select(Preparation))}


# entity name in the audit trail -> reader of the current state of every such entity
STATE_READERS: dict[str, StateReader] = {
    "user": _users,
    "trial": _trial,
    "participant": _participants,
    "list": _lists,
    "diary": diary_states,
    "preparation": _preparations,
}


def _envelope_binding_problem(session: Session) -> str | None:
    """Every bound envelope was bound at the time of the event that randomized its
    participant (both carry one time, ``audit.now``), and only a bound one has a time."""
    bound_by = {
        entity_id: (seq, at, json.loads(after or "{}").get("envelope"))
        for entity_id, seq, at, after in session.exec(
            select(AuditEvent.entity_id, AuditEvent.seq, AuditEvent.at, AuditEvent.after_json)
            .where(AuditEvent.action == "participant.randomize")
            .order_by(col(AuditEvent.seq))
        )
    }
    stmt = select(Envelope.stratum_code, Envelope.seq, Envelope.participant_id,
                  Envelope.bound_at).where(
        col(Envelope.participant_id).is_not(None) | col(Envelope.bound_at).is_not(None))
    for stratum, seq, pid, bound_at in session.exec(stmt):
        where = f"envelope {stratum}#{seq}"
        found = bound_by.get(pid) if pid else None
        if found is None or found[2] != f"{stratum}#{seq}":
            return f"{where} is bound with no randomization event that bound it"
        if bound_at != found[1]:
            return (f"{where}: its binding time was changed (event {found[0]} bound it at "
                    f"{found[1].isoformat()})")
    return None


def _strata_problem(session: Session) -> str | None:
    """Every stratum row is one the stored protocol defines (its site and levels), and
    holds a sealed list."""
    if session.get(Trial, 1) is None:
        return None
    expected = {s.code: s for s in all_strata(stored_protocol(session))}
    sealed = set(session.exec(select(AllocationList.stratum_code)).all())
    for row in session.exec(select(Stratum)):
        want = expected.get(row.code)
        if want is None:
            return f"stratum {row.code!r} is not one of the protocol's strata"
        if row.site_code != want.site or json.loads(row.levels_json) != dict(want.levels):
            return f"stratum {row.code!r} no longer names its site and levels"
        if row.code not in sealed:
            return f"stratum {row.code!r} has no sealed list"
    return None


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    events: int
    head: str
    bad_seq: int | None = None
    problem: str | None = None


def _latest_states(session: Session) -> dict[tuple[str, str], tuple[int, str]]:
    stmt = (
        select(AuditEvent.entity, AuditEvent.entity_id, AuditEvent.seq, AuditEvent.after_json)
        .where(col(AuditEvent.entity).in_(list(STATE_READERS)))
        .where(col(AuditEvent.after_json).is_not(None))
        .order_by(col(AuditEvent.seq))
    )
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    for entity, entity_id, seq, after in session.exec(stmt):
        assert after is not None
        latest[(entity, entity_id)] = (seq, after)
    return latest


def _first_state_mismatch(session: Session, events: int) -> tuple[int, str] | None:
    latest = _latest_states(session)
    problems: list[tuple[int, str]] = []
    for entity, reader in STATE_READERS.items():
        for entity_id, state in reader(session).items():
            found = latest.pop((entity, entity_id), None)
            if found is None:
                problems.append(
                    (
                        events + 1,
                        f"{entity} {entity_id!r} exists but no audit event records it: "
                        "an event is missing or the row was added outside trialkit",
                    )
                )
            elif canonical_json(state) != found[1]:
                problems.append(
                    (
                        found[0],
                        f"{entity} {entity_id!r} no longer matches this event: "
                        "it was changed outside trialkit or a later event is missing",
                    )
                )
    for (entity, entity_id), (seq, _after) in latest.items():
        problems.append((seq, f"{entity} {entity_id!r} recorded here no longer exists"))
    return min(problems) if problems else None


def verify(session: Session, *, expected_head: str | None = None) -> VerifyReport:
    """Recompute the chain and compare stored state with the audited state."""
    count, head, brk = audit.first_break(session)
    if brk is not None:
        return VerifyReport(False, count, head, brk.seq, f"event {brk.seq}: {brk.why}")
    trial = session.get(Trial, 1)
    if trial is not None and not trial.training:  # a training trial's clock is stated
        back = audit.first_time_reversal(session)
        if back is not None:
            return VerifyReport(False, count, head, back.seq, f"event {back.seq}: {back.why}")
    mismatch = _first_state_mismatch(session, count)
    if mismatch is not None:
        seq, why = mismatch
        return VerifyReport(False, count, head, seq, f"event {seq}: {why}")
    trial = session.get(Trial, 1)
    if trial is not None and (
        hashlib.sha256(trial.protocol_text.encode("utf-8")).hexdigest() != trial.protocol_sha256
    ):
        return VerifyReport(
            False, count, head, 1, "event 1: the stored protocol text no longer matches its SHA-256"
        )
    for problem in (_envelope_binding_problem(session), _strata_problem(session)):
        if problem is not None:
            return VerifyReport(False, count, head, None, problem)
    for check in verify_lists(session):
        if check.problem is not None:
            return VerifyReport(
                False, count, head, None, f"list {check.list_id} ({check.stratum}): {check.problem}"
            )
    if expected_head:
        known = session.exec(
            select(AuditEvent.seq).where(col(AuditEvent.hash).startswith(expected_head.lower()))
        ).first()
        if known is None:
            return VerifyReport(
                False,
                count,
                head,
                count + 1,
                f"the chain no longer contains the head {expected_head} you noted: "
                "events after it were removed or rewritten",
            )
    guards = append_only_problems(session.connection())
    if guards:
        return VerifyReport(False, count, head, None,
                            "the audit trail is no longer append-only: " + "; ".join(guards))
    return VerifyReport(True, count, head)
