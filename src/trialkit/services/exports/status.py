"""The trial's status, as the investigator's dashboard and ``trialkit status`` show it:
enrolment per site and stratum against target, diary completeness per window, participants
overdue with their diary, the CONSORT flow and the enrolment curve. Blinded throughout:
counts only, never split by arm (the unblinded analysis starts from the export, after lock).

Definitions made here once (the protocol is silent on them):

- **completed** the primary window: its last date is over (before today) and the
  participant had not withdrawn before that date;
- **analysed**: the intention-to-treat population, everyone randomized; of them,
  ``primary_missing`` have no primary outcome (prorated headache days of the primary window)
  yet or at all;
- **lost to follow-up**: randomized and not withdrawn, the primary window over, and its
  outcome missing (too few diary days to prorate);
- **completed** the last window (day 84 for KetHead): as for the primary window;
- **withdrawn**: everyone whose status (``domain.participant_status``, the rule every view
  uses) is withdrawn. The enrolment tables count them all; the CONSORT flow splits them into
  those who withdrew before randomization (counted under *not randomized*) and after it
  (``withdrawn``), so the two parts add up to the tables' total;
- **overdue**: randomized, infused and not withdrawn, inside a window relative to the
  infusion, with fewer days recorded in that window than days over so far; *at risk* when
  so many are missing that the window can no longer reach the protocol's minimum for
  proration (the primary outcome would be missing).

Outcomes come from ``domain.diary.derive_outcomes``, kept per participant and window in the
database (``services.diary.window_summary``) whenever a diary day, randomization, infusion or
withdrawal changes them; the report counts them there with aggregate queries, so its cost
does not grow with the number of diary rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass, fields
from datetime import date, datetime

from sqlalchemy import exists, func, literal_column
from sqlalchemy import select as select_columns
from sqlmodel import Session, col

from trialkit.domain.clock import Clock
from trialkit.domain.participant_status import Facts, Flow, flow
from trialkit.domain.protocol import Diary, Protocol
from trialkit.domain.roles import Permission, Role
from trialkit.domain.strata import all_strata
from trialkit.services.actor import Actor, require
from trialkit.services.administration.trial import get_trial, stored_protocol
from trialkit.services.diary import window_summary
from trialkit.services.enrolment.allocation import StratumUse, stratum_usage
from trialkit.services.integrity.refusals import audits_refusals
from trialkit.store.models import Participant, Preparation

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
    withdrawn: int  # withdrawn, whenever (before or after randomization)

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
    withdrawn: int  # withdrawn after randomization
    analysed: int  # intention to treat: everyone randomized
    primary_window: str
    # CONSORT 2010's boxes (domain.participant_status.flow, and the diary for the last three)
    declined: int = 0  # eligible, withdrew before consenting
    withdrew_after_consent: int = 0  # before randomization
    awaiting_randomization: int = 0
    not_infused_withdrawn: int = 0
    awaiting_infusion: int = 0
    discontinued: int = 0  # withdrew after the infusion
    lost_to_follow_up: int = 0
    completed_last: int = 0
    last_window: str = ""
    primary_missing: int = 0  # randomized, primary outcome missing (of ``analysed``)


@dataclass(frozen=True)
class CurvePoint:
    """Randomized participants by the end of ``day`` (cumulative), in all and per site."""

    day: date
    total: int
    by_site: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class TrialCounts:
    """Enrolment and the CONSORT flow: counts only (blinded)."""

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
    consort: Consort


@dataclass(frozen=True)
class TrialStatus(TrialCounts):
    """The counts, and what the diaries say."""

    completeness: tuple[WindowCompleteness, ...]
    overdue: tuple[Overdue, ...]
    curve: tuple[CurvePoint, ...]


# --- counting ----------------------------------------------------------------------------------


_RANDOMIZED = col(Participant.randomization_number).is_not(None)


@dataclass(frozen=True)
class _Flows:
    by_site: dict[str, Flow]
    by_stratum: dict[str, Flow]
    total: Flow


def _flows(session: Session) -> _Flows:
    """The flow (``domain.participant_status.flow``: the one status rule) of each site, each
    stratum and the whole trial. One grouped query: a row per site, stratum and combination
    of facts, never one per participant."""
    prepared = exists().where(col(Preparation.participant_id) == col(Participant.id))
    facts = tuple(fact.label(f"fact_{i}") for i, fact in enumerate((
        col(Participant.eligible).is_(True),
        col(Participant.consent_date).is_not(None),
        _RANDOMIZED,
        prepared,  # a look-up in the preparation's index per participant
        col(Participant.infusion_date).is_not(None),
        col(Participant.withdrawn_at).is_not(None),
    )))
    keys = (col(Participant.site_code), col(Participant.stratum_code))
    stmt = (select_columns(*keys, *facts, func.count())  # grouped by the facts' names: the
            .group_by(*keys, *(literal_column(f.name) for f in facts)))  # look-up runs once
    sites: dict[str, list[tuple[Facts, int]]] = {}
    strata: dict[str, list[tuple[Facts, int]]] = {}
    everyone: list[tuple[Facts, int]] = []
    for site, stratum, *flags, n in session.execute(stmt):
        group = (Facts(*(bool(v) for v in flags)), int(n))
        sites.setdefault(str(site), []).append(group)
        strata.setdefault(str(stratum), []).append(group)
        everyone.append(group)
    return _Flows({code: flow(g) for code, g in sites.items()},
                  {code: flow(g) for code, g in strata.items()}, flow(everyone))


def _enrolment(code: str, name: str, target: int | None, flows: dict[str, Flow]) -> Enrolment:
    f = flows.get(code, Flow())
    return Enrolment(code, name, target, f.screened, f.eligible, f.consented, f.randomized,
                     f.withdrawn)


def _sites(flows: _Flows, protocol: Protocol) -> tuple[Enrolment, ...]:
    return tuple(_enrolment(s.code, s.name, s.target, flows.by_site) for s in protocol.sites)


def _strata(flows: _Flows, protocol: Protocol) -> tuple[Enrolment, ...]:
    return tuple(_enrolment(s.code, s.describe(protocol), None, flows.by_stratum)
                 for s in all_strata(protocol))


def _ineligible_by_criterion(session: Session, protocol: Protocol) -> tuple[tuple[str, int], ...]:
    failed: Counter[str] = Counter()
    stmt = (select_columns(col(Participant.failed_json), func.count())
            .where(col(Participant.eligible).is_(False)).group_by(col(Participant.failed_json)))
    for ids, n in session.execute(stmt):  # a row per combination of failed criteria
        for cid in ids:
            failed[cid] += n
    order = [c.id for c in protocol.eligibility.criteria]
    known = [(cid, failed[cid]) for cid in order if failed[cid]]
    others = sorted((cid, n) for cid, n in failed.items() if cid not in order)
    return tuple(known + others)


# --- what the diaries say (counted in the database: services.diary.window_summary) ----------------


def _completeness(session: Session, rules: Diary, today: dict[str, date]
                  ) -> tuple[WindowCompleteness, ...]:
    counts = window_summary.window_counts(session, today)
    empty = window_summary.WindowCounts(0, 0, 0, 0, 0)
    return tuple(WindowCompleteness(w.code, w.primary, *astuple(counts.get(w.code, empty)))
                 for w in rules.windows)


def _overdue(session: Session, actor: Actor, rules: Diary, today: dict[str, date]
             ) -> list[Overdue]:
    return [Overdue(b.participant_id, b.site_code, b.window, b.missing_days, b.last_recorded,
                    b.length - b.missing_days < rules.proration_min_days)
            for b in window_summary.overdue_rows(session, today, actor.scope)]


def _curve(session: Session, site_codes: Iterable[str]) -> tuple[CurvePoint, ...]:
    randomized_on: Counter[tuple[date, str]] = Counter()
    for day, site, n in window_summary.randomized_per_day(session):
        randomized_on[(day, site)] += n
    codes = list(site_codes)
    running = dict.fromkeys(codes, 0)
    points: list[CurvePoint] = []
    for day in sorted({d for d, _site in randomized_on}):
        for site in codes:
            running[site] += randomized_on[(day, site)]
        points.append(CurvePoint(day, sum(running.values()),
                                 tuple((s, running[s]) for s in codes)))
    return tuple(points)


def _consort(session: Session, protocol: Protocol, f: Flow, today: dict[str, date]
             ) -> Consort:
    last_window = protocol.diary.windows[-1].code
    closing = window_summary.closing_counts(
        session, today, [protocol.diary.primary_window.code, last_window])
    primary, last = closing[protocol.diary.primary_window.code], closing[last_window]
    return Consort(
        screened=f.screened,
        ineligible=f.ineligible,
        ineligible_by_criterion=_ineligible_by_criterion(session, protocol),
        eligible=f.eligible,
        consented=f.consented,
        not_randomized=f.not_randomized,
        withdrew_before_randomization=f.withdrew_before_randomization,
        randomized=f.randomized,
        infused=f.infused,
        completed_primary=primary.completed,
        withdrawn=f.withdrew_after_randomization,
        analysed=f.randomized,
        primary_window=protocol.diary.primary_window.code,
        declined=f.declined,
        withdrew_after_consent=f.withdrew_after_consent,
        awaiting_randomization=f.awaiting_randomization,
        not_infused_withdrawn=f.not_infused_withdrawn,
        awaiting_infusion=f.awaiting_infusion,
        discontinued=f.withdrew_after_infusion,
        lost_to_follow_up=primary.lost,
        completed_last=last.completed,
        last_window=last_window,
        primary_missing=f.randomized - primary.prorated,
    )


@audits_refusals("trial.status", entity="trial")
def trial_counts(session: Session, actor: Actor, *, clock: Clock) -> TrialCounts:
    """The counts alone (enrolment per site and stratum, CONSORT), blinded: what the
    dashboard paints first. Admins also see envelopes sealed, used and left per stratum."""
    require(actor, Permission.READ_STATUS)
    return _counts(session, actor, stored_protocol(session), clock.now())


def _site_days(protocol: Protocol, now: datetime) -> dict[str, date]:
    return {code: protocol.site_time(code).today(now) for code in protocol.site_codes}


def _counts(session: Session, actor: Actor, protocol: Protocol, now: datetime) -> TrialCounts:
    trial = get_trial(session)
    flows = _flows(session)
    envelopes = (tuple(stratum_usage(session, actor)) if actor.role is Role.ADMIN else None)
    return TrialCounts(
        trial_code=trial.trial_code,
        title=trial.title,
        training=trial.training,
        as_of=protocol.trial_time.today(now),
        locked_at=protocol.trial_time.local(trial.locked_at) if trial.locked_at else None,
        locked_by=trial.locked_by,
        target=sum(s.target for s in protocol.sites),
        sites=_sites(flows, protocol),
        strata=_strata(flows, protocol),
        envelopes=envelopes,
        consort=_consort(session, protocol, flows.total, _site_days(protocol, now)),
    )


@audits_refusals("trial.status", entity="trial")
def trial_status(session: Session, actor: Actor, *, clock: Clock,
                 on_counts: Callable[[TrialCounts], None] | None = None) -> TrialStatus:
    """The whole status, blinded: :func:`trial_counts`, then diary completeness, the overdue
    list and the enrolment curve, as of the same instant and in the same transaction.
    ``on_counts`` gets the counts as soon as they are read (a screen paints them while the
    rest is read)."""
    require(actor, Permission.READ_STATUS)
    protocol = stored_protocol(session)
    now = clock.now()
    today = _site_days(protocol, now)
    counts = _counts(session, actor, protocol, now)
    if on_counts is not None:
        on_counts(counts)
    overdue = sorted(_overdue(session, actor, protocol.diary, today),
                     key=lambda o: (not o.at_risk, -o.missing_days, o.participant_id))
    return TrialStatus(
        **{f.name: getattr(counts, f.name) for f in fields(TrialCounts)},
        completeness=_completeness(session, protocol.diary, today),
        overdue=tuple(overdue),
        curve=_curve(session, protocol.site_codes),
    )
