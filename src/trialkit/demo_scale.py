"""``trialkit demo --participants N``: the demo KetHead training trial with a generated
history of N participants, for trying the tool (and benchmarking it) at the size of a large
pragmatic trial.

Users, the protocol and the sealed lists are made by the services, as ``trialkit demo``
makes them. The participants' history (screening, consent, diaries, randomization, the
pharmacy's preparation, infusion, withdrawal) is generated and stored in bulk, each
participant ending at one stage; every row the services would write is written with the
audit event they would record, at the time it happened, so ``audit verify`` checks it as
it checks anything else. Each envelope is bound in order of randomization within its
stratum and opened by a pharmacist (the custodian key is unlocked once) to seal the lots.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any, Final

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, col, select

from trialkit.domain.audit_chain import canonical_json
from trialkit.domain.clock import Clock
from trialkit.domain.codes import new_label_code, participant_id, randomization_number
from trialkit.domain.diary import DiaryDay, check_day
from trialkit.domain.eligibility import Screening, answered_criteria, evaluate
from trialkit.domain.protocol import Protocol
from trialkit.domain.sealing import (
    key_info,
    open_envelope,
    parse_envelope_plaintext,
    unwrap_data_key,
)
from trialkit.domain.site_time import SiteTime
from trialkit.domain.strata import stratum_code
from trialkit.services.actor import Actor
from trialkit.services.administration.custody import custodian_private_key
from trialkit.services.diary import window_summary
from trialkit.services.diary.audit_snapshots import (
    batch_reason,
    batch_snapshot,
    diary_snapshot,
    utc_text,
)
from trialkit.services.enrolment.participants import participant_state
from trialkit.services.integrity import audit
from trialkit.services.pharmacy.envelopes import seal_details
from trialkit.services.pharmacy.preparations import preparation_snapshot
from trialkit.store.models import DiaryEntry, Envelope, ListKeyGrant, Participant, Preparation

# Where participants end up, with weights (per 100). Every stage appears once N is at least
# the number of stages.
FATES: Final[tuple[tuple[str, int], ...]] = (
    ("ineligible", 10),
    ("screened", 3),  # eligible, not consented yet
    ("consented", 5),  # baseline diary under way
    ("withdrawn_before_randomization", 2),
    ("randomized", 2),  # waiting for the pharmacy
    ("withdrawn_after_randomization", 1),
    ("dispensed", 2),  # prepared, not infused yet
    ("withdrawn_after_infusion", 3),
    ("follow_up", 22),  # infused, follow-up diary under way
    ("complete", 50),  # infused, the whole follow-up is over
)
SPAN_DAYS: Final = 540  # the generated trial has been recruiting this long
DIARY_WEEK: Final = 7  # a paper diary is typed in once a week
CORRECTION_RATE: Final = 0.015
CORRECTION_REASONS: Final = (
    "transcription error from the paper diary",
    "participant phoned to correct the duration",
    "severity misread at entry",
)
WITHDRAWAL_REASONS: Final = (
    "moved away", "no longer wishes to take part", "adverse event (investigator's decision)",
    "lost to follow-up",
)
CHUNK: Final = 20_000


def fate_counts(n: int) -> dict[str, int]:
    """How many of ``n`` participants end at each stage: the weights, rounded by largest
    remainder, and at least one of each once ``n`` allows."""
    total = sum(w for _f, w in FATES)
    exact = {f: n * w / total for f, w in FATES}
    counts = {f: int(v) for f, v in exact.items()}
    if n >= len(FATES):
        for f in counts:
            counts[f] = max(counts[f], 1)
    left = n - sum(counts.values())
    by_remainder = sorted(exact, key=lambda f: exact[f] - int(exact[f]), reverse=True)
    i = 0
    while left != 0:
        f = by_remainder[i % len(by_remainder)]
        if left > 0:
            counts[f] += 1
            left -= 1
        elif counts[f] > 1:
            counts[f] -= 1
            left += 1
        i += 1
    return counts


@dataclass
class _Plan:
    """One participant's generated story: dates at their site, and what happened."""

    fate: str
    site: str
    screened: date
    consented: date | None = None
    randomized: date | None = None
    prepared: date | None = None
    infused: date | None = None
    withdrawn: date | None = None
    row: dict[str, Any] = field(default_factory=dict)
    envelope: tuple[str, int] | None = None


@dataclass
class _Story:
    """What is being built: rows to insert and the events that record them."""

    protocol: Protocol
    local: SiteTime
    now: datetime
    rng: random.Random
    actors: dict[str, Actor]
    coordinators: dict[str, str]  # site -> coordinator name
    events: list[tuple[datetime, int, Actor, audit.Change]] = field(default_factory=list)
    plans: list[_Plan] = field(default_factory=list)

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        """An instant on a site day (the demo's sites share one zone), never later than now."""
        wall = datetime.combine(day, time(hour, minute), tzinfo=self.local.tz)
        return min(wall, self.now - timedelta(minutes=1))

    def event(self, when: datetime, who: str, change: audit.Change) -> None:
        self.events.append((when, len(self.events), self.actors[who], change))


def _plans(story: _Story, n: int, today: date) -> list[_Plan]:
    rng = story.rng
    fates = [f for f, c in fate_counts(n).items() for _ in range(c)]
    rng.shuffle(fates)
    start = today - timedelta(days=SPAN_DAYS)
    sites = story.protocol.site_codes
    plans = []
    for fate in fates:
        # Consent after screening, 28+ baseline days, randomization, the preparation a day
        # or two later and the infusion the same day.
        a, b, d = rng.randint(0, 3), rng.randint(0, 2), rng.randint(0, 2)
        lead = a + 28 + b + d  # screening to infusion
        if fate == "complete":
            infused = today - timedelta(days=rng.randint(86, SPAN_DAYS - lead))
        elif fate in ("follow_up", "withdrawn_after_infusion"):
            infused = today - timedelta(days=rng.randint(5, 84))
        elif fate == "dispensed":
            infused = today - timedelta(days=1)
        elif fate in ("randomized", "withdrawn_after_randomization"):
            infused = today - timedelta(days=rng.randint(1, 2)) + timedelta(days=d)
        elif fate == "consented":
            infused = today + timedelta(days=rng.randint(2, 26) + b + d)
        elif fate == "withdrawn_before_randomization":
            infused = today - timedelta(days=rng.randint(40, SPAN_DAYS - lead))
        elif fate == "screened":
            infused = today - timedelta(days=rng.randint(1, 6)) + timedelta(days=lead)
        else:  # ineligible
            infused = today - timedelta(days=rng.randint(1, SPAN_DAYS - lead)) + timedelta(lead)
        screened = max(infused - timedelta(days=lead), start)
        plan = _Plan(fate, rng.choice(sites), screened)
        consented = screened + timedelta(days=a)
        if fate not in ("ineligible", "screened"):
            plan.consented = consented
        if fate not in ("ineligible", "screened", "consented", "withdrawn_before_randomization"):
            plan.randomized = consented + timedelta(days=28 + b)
        if fate in ("dispensed", "withdrawn_after_infusion", "follow_up", "complete"):
            plan.prepared = plan.infused = infused
            if fate == "dispensed":
                plan.infused = None
        if fate == "withdrawn_before_randomization":
            plan.withdrawn = consented + timedelta(days=rng.randint(3, 20))
        elif fate == "withdrawn_after_randomization":
            plan.withdrawn = plan.randomized
        elif fate == "withdrawn_after_infusion":
            plan.withdrawn = infused + timedelta(days=rng.randint(2, (today - infused).days - 1))
        plans.append(plan)
    plans.sort(key=lambda p: p.screened)
    return plans


# --- screening --------------------------------------------------------------------------------


def _screening(story: _Story, plan: _Plan, number: int) -> None:
    protocol, rng = story.protocol, story.rng
    answers = {c.id: c.kind == "inclusion" for c in answered_criteria(protocol)}
    rules = protocol.eligibility
    age = rng.randint(rules.age_min, rules.age_max)
    if plan.fate == "ineligible":
        if rng.random() < 0.3:
            age = rng.choice([rng.randint(14, rules.age_min - 1),
                              rng.randint(rules.age_max + 1, 88)])
        else:
            for cid in rng.sample(sorted(answers), rng.choice([1, 1, 1, 2])):
                answers[cid] = not answers[cid]
    sex = rng.choice("FM")
    weight = round(rng.uniform(48.0, 125.0), 1)
    verdict = evaluate(Screening(age, sex, weight, answers), protocol)
    assert verdict.eligible == (plan.fate != "ineligible")
    levels = {f.id: rng.choice([lv.code for lv in f.levels]) for f in protocol.stratification}
    who = story.coordinators[plan.site]
    plan.row = {
        "id": participant_id(plan.site, number), "site_code": plan.site, "number": number,
        "stratum_code": stratum_code(plan.site, levels, protocol),
        "factors_json": levels, "age": age, "sex": sex, "weight_kg": weight,
        "answers_json": answers, "eligible": verdict.eligible,
        "failed_json": list(verdict.failed),
        "screened_at": story.at(plan.screened, 9, rng.randint(0, 59)), "screened_by": who,
        "consent_date": None, "consent_form_version": None, "withdrawn_at": None,
        "withdrawal_reason": None, "randomization_number": None, "label_code": None,
        "randomized_at": None, "infusion_date": None, "planned_infusion_date": None,
        "unblinded_emergency": False,
    }


def _state(plan: _Plan) -> dict[str, Any]:
    envelope = f"{plan.envelope[0]}#{plan.envelope[1]}" if plan.envelope else None
    return participant_state(SimpleNamespace(**plan.row), envelope)


def _participant_events(story: _Story, plan: _Plan) -> None:
    """The participant's own events, each with the state it left (the row ends final)."""
    row, pid, who, rng = plan.row, plan.row["id"], story.coordinators[plan.site], story.rng
    final = dict(row)
    envelope = plan.envelope
    for key in ("consent_date", "consent_form_version", "withdrawn_at", "withdrawal_reason",
                "randomization_number", "label_code", "randomized_at", "infusion_date"):
        row[key] = None
    plan.envelope = None
    steps: list[tuple[datetime, str, list[str], str | None]] = []
    if plan.consented is not None:
        steps.append((story.at(plan.consented, 10, rng.randint(0, 59)), "participant.consent",
                      ["consent_date", "consent_form_version"], None))
    if final["randomized_at"] is not None:
        steps.append((final["randomized_at"], "participant.randomize",
                      ["randomization_number", "label_code", "randomized_at"], None))
    if plan.infused is not None:
        steps.append((story.at(plan.infused, 15, rng.randint(0, 59)), "participant.infuse",
                      ["infusion_date"], f"infused on {plan.infused}, within preparation 1"))
    if final["withdrawn_at"] is not None:
        steps.append((final["withdrawn_at"], "participant.withdraw",
                      ["withdrawn_at", "withdrawal_reason"], final["withdrawal_reason"]))
    steps.sort(key=lambda s: s[0])
    story.event(row["screened_at"], who, audit.Change(
        "participant.screen", "participant", pid, after=_state(plan)))
    for when, action, keys, reason in steps:
        before = _state(plan)
        for key in keys:
            row[key] = final[key]
        if action == "participant.randomize":
            plan.envelope = envelope
        story.event(when, who, audit.Change(action, "participant", pid, before=before,
                                            after=_state(plan), reason=reason))
    assert row == final


# --- diaries ----------------------------------------------------------------------------------


def _diary_day(rng: random.Random, on: date, protocol: Protocol, frequency: float) -> DiaryDay:
    levels = protocol.diary.severity_levels
    if rng.random() >= frequency:
        return DiaryDay(on, False, levels[0], 0.0, rng.random() < 0.03)
    hours = float(rng.choice([1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24]))
    return DiaryDay(on, True, rng.choice(levels[1:]), hours, rng.random() < 0.45)


def _diary_days(story: _Story, plan: _Plan, today: date) -> list[DiaryDay]:
    """The days this participant's diary holds: the baseline from consent (enough to pass
    the randomization gate when randomized), the follow-up after the infusion, with gaps."""
    if plan.consented is None:
        return []
    rng, protocol, rules = story.rng, story.protocol, story.protocol.diary
    gap = rng.choice([0.0, 0.01, 0.03, 0.05, 0.05, 0.1, 0.3])  # some diaries are patchy
    frequency = rng.uniform(0.62, 0.95)  # chronic daily headache
    last = today - timedelta(days=1)
    if plan.withdrawn is not None:
        last = min(last, plan.withdrawn)
    base_end = (plan.randomized or last + timedelta(days=1)) - timedelta(days=1)
    days: list[DiaryDay] = []
    on = plan.consented
    while on <= min(base_end, last):
        if plan.randomized is None or rng.random() >= min(gap, 0.1):
            days.append(_diary_day(rng, on, protocol, frequency))
        on += timedelta(days=1)
    if plan.randomized is not None:
        days = _passing_baseline(story, days, plan.randomized)
    if plan.infused is not None:
        after = rng.uniform(0.35, 1.0) * frequency
        end = min(last, plan.infused + timedelta(days=rules.max_day_after_infusion))
        on = plan.infused + timedelta(days=1)
        while on <= end:
            if rng.random() >= gap:
                days.append(_diary_day(rng, on, protocol, after))
            on += timedelta(days=1)
    return [check_day(d, rules) for d in days]


def _passing_baseline(story: _Story, days: list[DiaryDay], randomized: date) -> list[DiaryDay]:
    """Fill in days (as headache days) until the baseline window passes the gate."""
    rules = story.protocol.diary
    window = rules.baseline_window
    first, last = randomized + timedelta(days=window.start), randomized + timedelta(days=window.end)
    by_day = {d.day: d for d in days}
    inside = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    missing = [d for d in inside if d not in by_day]
    while len(inside) - len(missing) < rules.baseline_min_days:
        on = missing.pop()
        by_day[on] = _diary_day(story.rng, on, story.protocol, 1.0)
    heavy = [d for d in inside if d in by_day and not (by_day[d].headache
             and by_day[d].duration_hours >= rules.headache_day_min_hours)]
    story.rng.shuffle(heavy)
    while sum(1 for d in inside if d in by_day and by_day[d].headache
              and by_day[d].duration_hours >= rules.headache_day_min_hours
              ) < rules.baseline_min_headache_days:
        on = heavy.pop()
        by_day[on] = DiaryDay(on, True, rules.moderate_severe_levels[0], 6.0, False)
    return sorted(by_day.values(), key=lambda d: d.day)


def _weeks(days: Sequence[DiaryDay], randomized: date | None) -> Iterator[list[DiaryDay]]:
    """Days grouped as typed in: a week at a time, the baseline apart from the follow-up."""
    week: list[DiaryDay] = []
    for d in days:
        if week and ((d.day - week[0].day).days >= DIARY_WEEK
                     or (randomized is not None and week[0].day < randomized <= d.day)):
            yield week
            week = []
        week.append(d)
    if week:
        yield week


class _Diaries:
    """Diary rows, written a chunk at a time, and the events that record them."""

    def __init__(self, session: Session, story: _Story) -> None:
        self.session, self.story = session, story
        self.rows: list[dict[str, Any]] = []
        self.count = 0

    def add(self, plan: _Plan, today: date) -> None:
        story, rng = self.story, self.story.rng
        pid, who = plan.row["id"], story.coordinators[plan.site]
        for week in _weeks(_diary_days(story, plan, today), plan.randomized):
            typed_on = week[-1].day + timedelta(days=1)
            when = story.at(typed_on, 9, rng.randint(0, 59))
            if plan.randomized is not None and week[-1].day < plan.randomized:
                when = min(when, plan.row["randomized_at"] - timedelta(minutes=30))
            self._batch(pid, who, week, when)

    def _batch(self, pid: str, who: str, week: list[DiaryDay], when: datetime) -> None:
        story = self.story
        values = [(pid, d.day.isoformat(), d.headache, d.severity, d.duration_hours,
                   d.acute_medication) for d in week]
        batch = hashlib.sha256(canonical_json([pid, when.isoformat(), values]).encode()
                               ).hexdigest()[:16]
        source = "diary entered in one go"
        reason = batch_reason(source, batch)
        first = [self._row(pid, v, 1, who, when, reason) for v in values]
        story.event(when, who, audit.Change(
            "diary.import", "diary", f"batch/{batch}",
            after=batch_snapshot(values, {who}, {utc_text(when)}),
            reason=f"{reason}; {len(values)} days; {pid}"))
        self.rows.extend(first)
        for row in first:
            if story.rng.random() < CORRECTION_RATE:
                self._correct(row, who, when)
        if len(self.rows) >= CHUNK:
            self.flush()

    @staticmethod
    def _row(pid: str, v: tuple[Any, ...], version: int, who: str, when: datetime,
             reason: str | None) -> dict[str, Any]:
        return {"participant_id": pid, "day": date.fromisoformat(v[1]), "version": version,
                "headache": v[2], "severity": v[3], "duration_hours": v[4],
                "acute_medication": v[5],
                "recorded_by": who, "recorded_at": when, "reason": reason, "current": True}

    def _correct(self, first: dict[str, Any], who: str, typed: datetime) -> None:
        """A later version of the day: another severity, the same headache day or not."""
        story = self.story
        when = typed + timedelta(days=story.rng.randint(1, 6), minutes=story.rng.randint(1, 300))
        if when >= story.now or not first["headache"]:
            return
        levels = [s for s in story.protocol.diary.severity_levels[1:] if s != first["severity"]]
        why = story.rng.choice(CORRECTION_REASONS)
        second = self._row(first["participant_id"],
                           (None, first["day"].isoformat(), True, story.rng.choice(levels),
                            first["duration_hours"], first["acute_medication"]),
                           2, who, when, why)
        first["current"] = False
        old, new = SimpleNamespace(**first), SimpleNamespace(**second)
        old_current = SimpleNamespace(**(first | {"current": True}))
        story.event(when, who, audit.Change(
            "diary.correct", "diary", f"{first['participant_id']}/{first['day'].isoformat()}",
            before=diary_snapshot(old_current, []), after=diary_snapshot(new, [old]),
            reason=why))
        self.rows.append(second)

    def flush(self) -> None:
        if self.rows:
            self.session.connection().execute(insert(DiaryEntry), self.rows)
            self.count += len(self.rows)
            self.rows = []


# --- randomization and the pharmacy -----------------------------------------------------------


def _randomize(story: _Story, plans: list[_Plan]) -> None:
    """Randomization numbers trial-wide and envelopes per stratum, in order of time."""
    rng = story.rng
    randomized = []
    for p in plans:
        if p.randomized is not None:
            p.row["randomized_at"] = story.at(p.randomized, 11, rng.randint(0, 59))
            randomized.append(p)
    randomized.sort(key=lambda p: p.row["randomized_at"])
    next_seq: dict[str, int] = {}
    for k, p in enumerate(randomized, start=1):
        stratum = p.row["stratum_code"]
        next_seq[stratum] = next_seq.get(stratum, 0) + 1
        p.envelope = (stratum, next_seq[stratum])
        p.row["randomization_number"] = randomization_number(k)
        p.row["label_code"] = new_label_code()


def envelopes_needed(plans: Sequence[_Plan]) -> int:
    counts: dict[str, int] = {}
    for p in plans:
        if p.randomized is not None:
            counts[p.row["stratum_code"]] = counts.get(p.row["stratum_code"], 0) + 1
    return max(counts.values(), default=0)


def _bind(session: Session, plans: list[_Plan]) -> None:
    table = Envelope.__table__  # type: ignore[attr-defined]
    stmt = (update(table)
            .where(table.c.stratum_code == bindparam("s"), table.c.seq == bindparam("q"))
            .values(participant_id=bindparam("pid"), bound_at=bindparam("at")))
    params = [{"s": p.envelope[0], "q": p.envelope[1], "pid": p.row["id"],
               "at": p.row["randomized_at"]} for p in plans if p.envelope is not None]
    if params:
        session.connection().execute(stmt, params)


def _prepare(session: Session, story: _Story, plans: list[_Plan], password: str,
             lots: dict[str, dict[str, str]], pharmacist: str, checker: str) -> int:
    """Open each prepared participant's envelope with the pharmacist's key (unlocked once)
    and record the preparation, as ``dispense`` records it."""
    actor = story.actors[pharmacist]
    private = custodian_private_key(session, actor, password)
    keys: dict[str, bytes] = {}
    for grant in session.exec(select(ListKeyGrant).where(ListKeyGrant.user_id == actor.user_id)):
        keys[grant.list_id] = unwrap_data_key(grant.wrapped_key, private, key_info(grant.list_id))
    envelopes = {(e.stratum_code, e.seq): e for e in session.exec(
        select(Envelope).where(col(Envelope.participant_id).is_not(None)))}
    rows = []
    hours = story.protocol.dosing.expiry_hours
    for p in plans:
        if p.prepared is None or p.envelope is None:
            continue
        env = envelopes[p.envelope]
        key = keys[env.list_id]
        arm = parse_envelope_plaintext(
            open_envelope(key, env.ciphertext, env.list_id, env.stratum_code, env.seq)).arm_code
        pid = p.row["id"]
        at = story.at(p.prepared, 13, story.rng.randint(0, 59))
        prep = Preparation(participant_id=pid, number=1, prepared_at=at, prepared_by=pharmacist,
                           checked_by=checker, checked_at=at,
                           expires_at=at + timedelta(hours=hours),
                           sealed_details=seal_details(story.protocol, key, pid, arm, lots[arm]),
                           label_prints=1)
        rows.append(prep.model_dump(exclude={"id"}))
        slot = f"{env.stratum_code}#{env.seq}"
        story.event(at, checker, audit.Change("login", "user", checker))  # signs the check
        story.event(at, pharmacist, audit.Change(
            "envelope.open", "envelope", slot,
            after={"participant": pid, "list": env.list_id, "purpose": "dispense"}))
        story.event(at, pharmacist, audit.Change(
            "preparation.record", "preparation", pid, after=preparation_snapshot(prep)))
    if rows:
        session.connection().execute(insert(Preparation), rows)
    return len(rows)


# --- the whole story --------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    participants: int
    diary_rows: int
    events: int
    stages: dict[str, int]


def plan_population(protocol: Protocol, n: int, *, now: datetime, seed: int,
                    coordinators: dict[str, str]) -> _Story:
    """The story of ``n`` participants up to ``now`` (nothing stored yet; who acted is
    given to :func:`store_population`)."""
    story = _Story(protocol, protocol.trial_time, now, random.Random(seed), {}, coordinators)
    today = story.local.today(now)
    plans = _plans(story, n, today)
    numbers: dict[str, int] = {}
    for plan in plans:
        numbers[plan.site] = numbers.get(plan.site, 0) + 1
        _screening(story, plan, numbers[plan.site])
    story.plans = plans
    return story


def store_population(session: Session, story: _Story, *, actors: dict[str, Actor],
                     password: str, lots: dict[str, dict[str, str]], pharmacist: str,
                     checker: str, clock: Clock) -> Generated:
    """Store a planned story in the caller's transaction; ``actors``: every coordinator,
    the pharmacist (whose ``password`` unlocks the envelopes) and the checker."""
    story.actors.update(actors)
    plans = story.plans
    rng, today = story.rng, story.local.today(story.now)
    form = story.protocol.consent.form_versions[-1]
    for p in plans:
        if p.consented is not None:
            p.row["consent_date"], p.row["consent_form_version"] = p.consented, form
        if p.infused is not None:
            p.row["infusion_date"] = p.infused
        if p.withdrawn is not None:
            p.row["withdrawn_at"] = story.at(p.withdrawn, 16, rng.randint(0, 59))
            p.row["withdrawal_reason"] = rng.choice(WITHDRAWAL_REASONS)
    _randomize(story, plans)
    session.connection().execute(insert(Participant), [p.row for p in plans])
    _bind(session, plans)
    for p in plans:
        _participant_events(story, p)
    diaries = _Diaries(session, story)
    for p in plans:
        diaries.add(p, today)
    diaries.flush()
    window_summary.rebuild(session)  # what the status counts, from the stored diaries
    _prepare(session, story, plans, password, lots, pharmacist, checker)
    story.events.sort(key=lambda e: (e[0], e[1]))
    events = audit.record_dated(session, [(at, who, change) for at, _i, who, change
                                          in story.events], clock=clock)
    stages: dict[str, int] = {}
    for p in plans:
        stages[p.fate] = stages.get(p.fate, 0) + 1
    return Generated(len(plans), diaries.count, events, stages)
