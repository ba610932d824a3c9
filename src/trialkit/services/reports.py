"""The trial's status, as the investigator's dashboard and ``trialkit status`` show it:
enrolment per site and stratum against target, diary completeness per window, participants
overdue with their diary, the CONSORT flow and the enrolment curve. Blinded throughout:
counts only, never split by arm (the unblinded analysis starts from the export, after lock).

Definitions made here once (the protocol is silent on them):

- **completed** the primary window: its last date is over (before today) and the
  participant had not withdrawn before that date;
- **analysed**: randomized, with the primary outcome (prorated headache days of the primary
  window) not missing;
- **withdrawn** in the CONSORT flow counts randomized participants only; an eligible
  person who withdrew before randomization is counted under *not randomized*;
- **overdue**: randomized, infused and not withdrawn, inside a window relative to the
  infusion, with fewer days recorded in that window than days over so far; *at risk* when
  so many are missing that the window can no longer reach the protocol's minimum for
  proration (the primary outcome would be missing).

Outcomes come from ``domain.diary.derive_outcomes`` through ``export.stream_outcomes``, a
batch of participants at a time, so the report needs bounded memory at any trial size.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, case, func
from sqlalchemy import select as select_columns
from sqlalchemy.orm import Mapped
from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.diary import WindowOutcome
from trialkit.domain.protocol import Diary, Protocol
from trialkit.domain.roles import Permission, Role
from trialkit.domain.strata import all_strata
from trialkit.services.actor import Actor, require
from trialkit.services.allocation import StratumUse, stratum_usage
from trialkit.services.export import OutcomeRecord, stream_outcomes
from trialkit.services.refusals import audits_refusals
from trialkit.services.trial import get_trial, stored_protocol
from trialkit.store.models import Participant

# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    """Counts of one site or stratum (blinded)."""

    code: str
    name: str
    target: int | None  # sites have a target in the protocol; strata do not
    screened: int
    eligible: int
    consented: int
    randomized: int
    withdrawn: int  # randomized, then withdrawn

    @property
    def percent_of_target(self) -> float | None:
        return None if not self.target else 100.0 * self.randomized / self.target


@dataclass(frozen=True)
class WindowCompleteness:
    """How complete the diary of one window is, over the randomized participants for whom
    some of its days are over."""

    window: str
    primary: bool
    participants: int  # with at least one day of the window over
    days_expected: int
    days_recorded: int  # per participant at most the days expected
    elapsed: int  # participants whose whole window is over
    prorated: int  # participants with the window's prorated outcome not missing

    @property
    def percent(self) -> float | None:
        return None if not self.days_expected else 100.0 * self.days_recorded / self.days_expected


@dataclass(frozen=True)
class Overdue:
    """A participant whose diary is behind in the current window."""

    participant_id: str
    site: str
    window: str
    missing_days: int
    last_recorded: date | None
    at_risk: bool  # the window can no longer be prorated


@dataclass(frozen=True)
class Consort:
    """CONSORT flow counts (blinded: no split by arm)."""

    screened: int
    ineligible: int
    ineligible_by_criterion: tuple[tuple[str, int], ...]  # protocol order; one person may
    eligible: int  # fail several criteria
    consented: int
    not_randomized: int  # eligible, not randomized (yet)
    withdrew_before_randomization: int
    randomized: int
    infused: int
    completed_primary: int
    withdrawn: int
    analysed: int
    primary_window: str


@dataclass(frozen=True)
class CurvePoint:
    """Randomized participants by the end of ``day`` (cumulative), in all and per site."""

    day: date
    total: int
    by_site: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class TrialStatus:
    trial_code: str
    title: str
    training: bool
    as_of: date
    locked_at: datetime | None
    locked_by: str | None
    target: int
    sites: tuple[Enrolment, ...]
    strata: tuple[Enrolment, ...]
    envelopes: tuple[StratumUse, ...] | None  # admins only: sealed, used, left per stratum
    completeness: tuple[WindowCompleteness, ...]
    overdue: tuple[Overdue, ...]
    consort: Consort
    curve: tuple[CurvePoint, ...]


# --- counting ----------------------------------------------------------------------------------


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows meet ``condition``."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


_RANDOMIZED = col(Participant.randomization_number).is_not(None)
_WITHDRAWN = col(Participant.withdrawn_at).is_not(None)


def _enrolment_rows(session: Session, key: Mapped[str]) -> dict[str, tuple[int, ...]]:
    stmt = select_columns(
        key,
        func.count(),
        _flag(col(Participant.eligible).is_(True)),
        _flag(col(Participant.consent_date).is_not(None)),
        _flag(_RANDOMIZED),
        _flag(_RANDOMIZED & _WITHDRAWN),
    ).group_by(key)
    return {str(row[0]): tuple(int(v) for v in row[1:]) for row in session.execute(stmt)}


def _enrolment(code: str, name: str, target: int | None,
               counts: dict[str, tuple[int, ...]]) -> Enrolment:
    screened, eligible, consented, randomized, withdrawn = counts.get(code, (0, 0, 0, 0, 0))
    return Enrolment(code, name, target, screened, eligible, consented, randomized, withdrawn)


def _sites(session: Session, protocol: Protocol) -> tuple[Enrolment, ...]:
    counts = _enrolment_rows(session, col(Participant.site_code))
    return tuple(_enrolment(s.code, s.name, s.target, counts) for s in protocol.sites)


def _strata(session: Session, protocol: Protocol) -> tuple[Enrolment, ...]:
    counts = _enrolment_rows(session, col(Participant.stratum_code))
    return tuple(_enrolment(s.code, s.describe(protocol), None, counts)
                 for s in all_strata(protocol))


def _ineligible_by_criterion(session: Session, protocol: Protocol) -> tuple[tuple[str, int], ...]:
    failed: Counter[str] = Counter()
    stmt = select(Participant.failed_json).where(col(Participant.eligible).is_(False))
    for text in session.exec(stmt.execution_options(yield_per=1000)):
        failed.update(json.loads(text))
    order = [c.id for c in protocol.eligibility.criteria]
    known = [(cid, failed[cid]) for cid in order if failed[cid]]
    others = sorted((cid, n) for cid, n in failed.items() if cid not in order)
    return tuple(known + others)


# --- what the outcomes say ---------------------------------------------------------------------


class _Tally:
    """Everything the status needs from each randomized participant's outcomes, gathered in
    one pass over the stream."""

    def __init__(self, actor: Actor, rules: Diary) -> None:
        self.rules = rules
        self.sites = (frozenset(actor.sites) if actor.sites or actor.role is Role.COORDINATOR
                      else None)
        self.windows = {w.code: [0, 0, 0, 0, 0] for w in rules.windows}
        self.infused = self.completed = self.analysed = 0
        self.randomized_on: Counter[tuple[date, str]] = Counter()
        self.overdue: list[Overdue] = []

    def add(self, r: OutcomeRecord) -> None:
        p = r.participant
        self.randomized_on[(r.randomized_on, p.site_code)] += 1
        self.infused += p.infusion_date is not None
        for w in r.windows:
            self._window(w, r.today)
            if w.primary:
                self._primary(r, w)
        self._overdue(r)

    def _window(self, w: WindowOutcome, today: date) -> None:
        counts = self.windows[w.window]
        if w.days_expected:
            counts[0] += 1
            counts[1] += w.days_expected
            counts[2] += min(w.days_recorded, w.days_expected)
        if w.end is not None and w.end < today:
            counts[3] += 1
        counts[4] += w.headache_days_28 is not None

    def _primary(self, r: OutcomeRecord, w: WindowOutcome) -> None:
        over = w.end is not None and w.end < r.today
        left = r.withdrawn_on
        stayed = left is None or (w.end is not None and left >= w.end)
        self.completed += over and stayed
        self.analysed += w.headache_days_28 is not None

    def _overdue(self, r: OutcomeRecord) -> None:
        p = r.participant
        if p.withdrawn_at is not None or p.infusion_date is None:
            return
        if self.sites is not None and p.site_code not in self.sites:
            return
        yesterday = r.today - timedelta(days=1)
        for w in r.windows:
            if w.start is None or w.end is None or w.window == self.rules.baseline_window.code:
                continue
            missing = w.days_expected - w.days_recorded
            if w.start <= yesterday <= w.end and missing > 0:
                length = (w.end - w.start).days + 1
                at_risk = length - missing < self.rules.proration_min_days
                self.overdue.append(Overdue(p.id, p.site_code, w.window, missing,
                                            r.last_recorded, at_risk))

    def completeness(self) -> tuple[WindowCompleteness, ...]:
        return tuple(WindowCompleteness(w.code, w.primary, *self.windows[w.code])
                     for w in self.rules.windows)

    def curve(self, site_codes: Iterable[str]) -> tuple[CurvePoint, ...]:
        codes = list(site_codes)
        running = dict.fromkeys(codes, 0)
        points: list[CurvePoint] = []
        for day in sorted({d for d, _site in self.randomized_on}):
            for site in codes:
                running[site] += self.randomized_on[(day, site)]
            points.append(CurvePoint(day, sum(running.values()),
                                     tuple((s, running[s]) for s in codes)))
        return tuple(points)


def _consort(session: Session, protocol: Protocol, tally: _Tally) -> Consort:
    stmt = select_columns(
        func.count(),
        _flag(col(Participant.eligible).is_(False)),
        _flag(col(Participant.consent_date).is_not(None)),
        _flag(_RANDOMIZED),
        _flag(col(Participant.eligible).is_(True) & ~_RANDOMIZED & _WITHDRAWN),
        _flag(_RANDOMIZED & _WITHDRAWN),
    ).select_from(Participant)
    screened, ineligible, consented, randomized, withdrew_before, withdrawn = (
        int(v) for v in session.execute(stmt).one())
    return Consort(
        screened=screened,
        ineligible=ineligible,
        ineligible_by_criterion=_ineligible_by_criterion(session, protocol),
        eligible=screened - ineligible,
        consented=consented,
        not_randomized=screened - ineligible - randomized,
        withdrew_before_randomization=withdrew_before,
        randomized=randomized,
        infused=tally.infused,
        completed_primary=tally.completed,
        withdrawn=withdrawn,
        analysed=tally.analysed,
        primary_window=protocol.diary.primary_window.code,
    )


@audits_refusals("trial.status", entity="trial")
def trial_status(session: Session, actor: Actor, *, clock: Clock) -> TrialStatus:
    """The whole status, blinded. Admins also see envelopes sealed, used and left per
    stratum (to extend a list before it runs out)."""
    require(actor, Permission.READ_STATUS)
    trial = get_trial(session)
    protocol = stored_protocol(session)
    now = clock.now()
    tally = _Tally(actor, protocol.diary)
    for batch in stream_outcomes(session, now=now):
        for record in batch:
            tally.add(record)
    envelopes = (tuple(stratum_usage(session, actor)) if actor.role is Role.ADMIN else None)
    overdue = sorted(tally.overdue, key=lambda o: (not o.at_risk, -o.missing_days,
                                                   o.participant_id))
    return TrialStatus(
        trial_code=trial.trial_code,
        title=trial.title,
        training=trial.training,
        as_of=protocol.trial_time.today(now),
        locked_at=protocol.trial_time.local(trial.locked_at) if trial.locked_at else None,
        locked_by=trial.locked_by,
        target=sum(s.target for s in protocol.sites),
        sites=_sites(session, protocol),
        strata=_strata(session, protocol),
        envelopes=envelopes,
        completeness=tally.completeness(),
        overdue=tuple(overdue),
        consort=_consort(session, protocol, tally),
        curve=tally.curve(protocol.site_codes),
    )
