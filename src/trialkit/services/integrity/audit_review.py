"""Reading the audit trail as a reviewer does (monitor, admin, investigator): events with
filters, a page at a time, each with what it changed field by field; a participant's whole
history (screening to diary, the pharmacy's envelope openings and preparations included).

Pages are read by sequence number (keyset), never by offset, so the thousandth page of a
large trial costs what the first does. Every reader of the audit trail is blinded: what is
shown passes through ``domain.audit_diff.blinded``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, not_, or_
from sqlmodel import Session, col, select

from trialkit.domain.audit_diff import FieldChange, blinded, field_changes
from trialkit.domain.errors import InvalidInput
from trialkit.domain.roles import Permission
from trialkit.services.actor import Actor, require
from trialkit.services.diary.audit_snapshots import BATCH_MARK
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import (
    AuditEvent,
    DiaryEntry,
    Envelope,
    Participant,
    Site,
    Stratum,
)

# Rows read per round trip while looking for a page's events (a site is filtered here,
# not in SQL: which participant an event concerns can sit in its JSON).
SCAN_CHUNK = 500
PAGE_MAX = 1000


@dataclass(frozen=True)
class AuditFilter:
    """Which events a reviewer asks for. Times are UTC, ``since`` included, ``until``
    excluded; ``action`` matches actions starting with it; sign-ins (``login``,
    ``login.fail``) are left out unless ``sign_ins``."""

    participant: str | None = None
    user: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    site: str | None = None
    entity: str | None = None
    entity_id: str | None = None
    sign_ins: bool = False


@dataclass(frozen=True)
class ReviewedEvent:
    """An audit event as a reviewer reads it: who, when, what, why, and the fields it
    changed (blinded). ``participants`` are those it concerns; a batch of diary days read
    for one participant or site keeps only their rows."""

    seq: int
    at: datetime
    user: str
    role: str
    action: str
    entity: str
    entity_id: str
    reason: str | None
    participants: tuple[str, ...]
    before: Any
    after: Any
    changes: tuple[FieldChange, ...] = field(default=())


@dataclass(frozen=True)
class AuditPage:
    """Events in sequence order and where the next page starts (None: no more)."""

    events: list[ReviewedEvent]
    next_after: int | None


def is_sign_in(action: str) -> bool:
    """Sign-ins and failed sign-ins: most of a busy trail, shown only on request."""
    return action == "login" or action.startswith("login.")


# --- which participants an event concerns -------------------------------------------------


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _batch_rows(state: Any) -> list[list[Any]]:
    rows = state.get("rows") if isinstance(state, Mapping) else None
    return [r for r in rows if isinstance(r, list) and r] if isinstance(rows, list) else []


def concerns(entity: str, entity_id: str, before: Any, after: Any) -> tuple[str, ...]:
    """The participants an event is about, read from how each entity names them: a
    participant by its id, a preparation ``PID`` or ``PID#n``, a diary day ``PID/DATE``,
    a batch of days by its rows, an envelope by the participant it records."""
    if entity == "participant":
        return (entity_id,)
    if entity == "preparation":
        return (entity_id.split("#", 1)[0],)
    if entity == "diary":
        if entity_id.startswith("batch/"):
            return tuple(sorted({str(r[0]) for r in _batch_rows(after) + _batch_rows(before)}))
        return (entity_id.split("/", 1)[0],)
    if entity == "envelope":
        for state in (after, before):
            if isinstance(state, Mapping) and isinstance(state.get("participant"), str):
                return (state["participant"],)
    return ()


def _only_rows(state: Any, keep: set[str]) -> Any:
    """A batch's state with the rows of ``keep`` only (a participant's or a site's)."""
    if not isinstance(state, Mapping) or "rows" not in state:
        return state
    return {**state, "rows": [r for r in _batch_rows(state) if str(r[0]) in keep]}


# --- the query -------------------------------------------------------------------------------


def _participant_clause(session: Session, pid: str) -> ColumnElement[bool]:
    envelopes = [f"{e.stratum_code}#{e.seq}" for e in session.exec(
        select(Envelope).where(Envelope.participant_id == pid))]
    reasons = session.exec(
        select(DiaryEntry.reason).where(
            DiaryEntry.participant_id == pid, DiaryEntry.version == 1,
            col(DiaryEntry.reason).is_not(None),
        )
    )
    batches = sorted({f"batch/{m[1]}" for r in reasons if r and (m := BATCH_MARK.search(r))})
    entity, entity_id = col(AuditEvent.entity), col(AuditEvent.entity_id)
    return or_(
        and_(entity == "participant", entity_id == pid),
        and_(entity == "preparation",
             or_(entity_id == pid, entity_id.startswith(f"{pid}#", autoescape=True))),
        and_(entity == "diary",
             or_(entity_id.startswith(f"{pid}/", autoescape=True), entity_id.in_(batches))),
        and_(entity == "envelope", entity_id.in_(envelopes)) if envelopes else false(),
    )


def _where(session: Session, f: AuditFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    action = col(AuditEvent.action)
    if f.user:
        clauses.append(col(AuditEvent.user_name) == f.user)
    if f.action:
        clauses.append(action.startswith(f.action, autoescape=True))
    if f.entity:
        clauses.append(col(AuditEvent.entity) == f.entity)
    if f.entity_id:
        clauses.append(col(AuditEvent.entity_id) == f.entity_id)
    if f.since is not None:
        clauses.append(col(AuditEvent.at) >= f.since)
    if f.until is not None:
        clauses.append(col(AuditEvent.at) < f.until)
    if not f.sign_ins:
        clauses.append(not_(or_(action == "login", action.startswith("login."))))
    if f.participant:
        clauses.append(_participant_clause(session, f.participant))
    return clauses


@dataclass
class _Sites:
    """Which site each participant and stratum belongs to, read once per query."""

    participants: dict[str, str]
    strata: dict[str, str | None]

    @classmethod
    def read(cls, session: Session) -> _Sites:
        return cls(
            dict(session.exec(select(Participant.id, Participant.site_code)).all()),
            dict(session.exec(select(Stratum.code, Stratum.site_code)).all()),
        )

    def of(self, e: AuditEvent, pids: tuple[str, ...], after: Any) -> set[str]:
        found = {self.participants[p] for p in pids if p in self.participants}
        if e.entity == "list" and isinstance(after, Mapping):
            site = self.strata.get(str(after.get("stratum")))
            if site:
                found.add(site)
        return found


def _view(e: AuditEvent, f: AuditFilter, sites: _Sites | None) -> ReviewedEvent | None:
    before, after = blinded(_json(e.before_json)), blinded(_json(e.after_json))
    pids = concerns(e.entity, e.entity_id, before, after)
    if f.site is not None:
        assert sites is not None
        if f.site not in sites.of(e, pids, after):
            return None
        pids = tuple(p for p in pids if sites.participants.get(p) == f.site)
    if f.participant:
        pids = tuple(p for p in pids if p == f.participant)
    if e.entity == "diary" and e.entity_id.startswith("batch/") and (f.site or f.participant):
        before, after = _only_rows(before, set(pids)), _only_rows(after, set(pids))
    return ReviewedEvent(
        seq=e.seq, at=e.at, user=e.user_name, role=e.role, action=e.action, entity=e.entity,
        entity_id=e.entity_id, reason=e.reason, participants=pids, before=before, after=after,
        changes=tuple(field_changes(before, after)),
    )


def _scan(
    session: Session, f: AuditFilter, *, after: int | None, before: int | None, newest_first: bool
) -> Iterator[ReviewedEvent]:
    """Matching events from a sequence number on, read ``SCAN_CHUNK`` rows at a time."""
    clauses = _where(session, f)
    sites = _Sites.read(session) if f.site is not None else None
    seq = col(AuditEvent.seq)
    while True:
        stmt = select(AuditEvent).where(*clauses)
        if after is not None:
            stmt = stmt.where(seq > after)
        if before is not None:
            stmt = stmt.where(seq < before)
        stmt = stmt.order_by(seq.desc() if newest_first else seq).limit(SCAN_CHUNK)
        rows = list(session.exec(stmt))
        for e in rows:
            shown = _view(e, f, sites)
            if shown is not None:
                yield shown
        if len(rows) < SCAN_CHUNK:
            return
        if newest_first:
            before = rows[-1].seq
        else:
            after = rows[-1].seq
        session.expunge_all()  # a long scan keeps no rows it has shown


@audits_refusals("audit.log", entity="audit_event")
def audit_page(
    session: Session,
    actor: Actor,
    filters: AuditFilter,
    *,
    after: int | None = None,
    limit: int = 100,
) -> AuditPage:
    """Up to ``limit`` matching events after the sequence number ``after`` (from the
    first without it), oldest first; ``next_after`` is where the next page starts."""
    require(actor, Permission.READ_AUDIT)
    check_filters(session, filters)
    limit = max(1, min(limit, PAGE_MAX))
    events: list[ReviewedEvent] = []
    for e in _scan(session, filters, after=after, before=None, newest_first=False):
        if len(events) == limit:
            return AuditPage(events, events[-1].seq)
        events.append(e)
    return AuditPage(events, None)


@audits_refusals("audit.log", entity="audit_event")
def audit_events(
    session: Session, actor: Actor, filters: AuditFilter, *, newest: int | None = None
) -> Iterator[ReviewedEvent]:
    """Every matching event, oldest first, streamed a chunk at a time (``newest``: only
    the newest N). Read it inside the session's transaction."""
    require(actor, Permission.READ_AUDIT)
    check_filters(session, filters)
    if newest is None:
        return _scan(session, filters, after=None, before=None, newest_first=False)
    found: list[ReviewedEvent] = []
    for e in _scan(session, filters, after=None, before=None, newest_first=True):
        found.append(e)
        if len(found) == newest:
            break
    return iter(reversed(found))


def participant_timeline(
    session: Session, actor: Actor, pid: str, *, sign_ins: bool = False
) -> list[ReviewedEvent]:
    """Every event of one participant in order (blinded): screening, consent, diary,
    randomization, the pharmacy's openings, preparations and labels, infusion, refusals."""
    return list(audit_events(session, actor, AuditFilter(participant=pid, sign_ins=sign_ins)))


def time_bound(text: str | None, what: str, *, end: bool) -> datetime | None:
    """A filter's time from what a reviewer typed: an ISO 8601 time (UTC unless it says
    otherwise) or a date, which means the whole UTC day (from its start for ``since``,
    to its end for ``until``). Blank: no bound."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), UTC)
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what} {raw!r} is not a date or time like 2026-03-01 or 2026-03-01T09:30Z"
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def check_filters(session: Session, f: AuditFilter) -> None:
    """Refuse (exit 2) a filter that can match nothing because it names no site, or
    whose times are the wrong way round."""
    if f.site is not None:
        sites = sorted(session.exec(select(Site.code)).all())
        if f.site not in sites:
            raise InvalidInput(f"no site {f.site!r}: the trial's sites are {', '.join(sites)}")
    if f.since is not None and f.until is not None and f.until <= f.since:
        raise InvalidInput("the period ends before it starts: its end must come after its start")
