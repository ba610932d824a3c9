"""``trialkit demo``: a ready KetHead training trial with one user per role, so anyone can
open the TUI and look around. Every demo user's password is DEMO_PASSWORD (see README)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from trialkit.demo_scale import (
    SPAN_DAYS,
    Generated,
    envelopes_needed,
    plan_population,
    store_population,
)
from trialkit.domain.clock import Clock, SystemClock
from trialkit.domain.credentials import key_fingerprint
from trialkit.domain.diary import DiaryDay
from trialkit.domain.eligibility import answered_criteria
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.domain.protocol import LoadedProtocol, Protocol, load_protocol, protocol_from_text
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.custody import approve_custodian
from trialkit.services.administration.setup import found_trial, initialize
from trialkit.services.administration.sign_in import actor_for, login, unlock_signing_key
from trialkit.services.administration.users import activate_user, create_user, find_user
from trialkit.services.diary.entries import infuse
from trialkit.services.diary.file_import import record_days
from trialkit.services.enrolment.allocation import seal_lists
from trialkit.services.enrolment.participants import consent, randomize, screen
from trialkit.services.pharmacy.dispensing import dispense, dispense_queue
from trialkit.services.pharmacy.preparations import dispensed_ids
from trialkit.store.db import (
    check_reachable,
    make_engine,
    make_inspecting_engine,
    normalize_url,
    sqlite_path,
    transaction,
)
from trialkit.store.schema import erase
from trialkit.store.urls import public_url

DEMO_PASSWORD = "orchard-violin-demo"

# name, role, sites, custodian
DEMO_USERS: tuple[tuple[str, Role, tuple[str, ...], bool], ...] = (
    ("cora", Role.COORDINATOR, ("TWH",), False),
    ("sam", Role.COORDINATOR, ("SHS",), False),
    ("phil", Role.PHARMACIST, (), True),
    ("pia", Role.PHARMACIST, (), True),
    ("ivan", Role.INVESTIGATOR, (), True),
    ("iris", Role.INVESTIGATOR, (), False),
    ("mona", Role.MONITOR, (), False),
)
DEMO_ADMIN = "ada"
DEMO_PER_STRATUM = 20
MAX_PARTICIPANTS = 200_000
# The demo's story starts this many days ago: screening, four weeks of baseline diary,
# randomization and infusion, then follow-up diaries up to yesterday.
DEMO_DAYS_AGO = 40
# Made-up lot numbers per arm: the pharmacist picks the lots after opening the envelope.
DEMO_LOTS: dict[str, dict[str, str]] = {
    "KET": {"bolus": "K2403-117", "infusion": "K2403-118"},
    "PLA": {"bolus": "S2311-042", "infusion": "S2311-043"},
}

# site, coordinator, headache type, age, weight, how far they get
DEMO_PARTICIPANTS: tuple[tuple[str, str, str, int, float, str], ...] = (
    ("TWH", "cora", "CM", 44, 68.0, "randomized"),
    ("TWH", "cora", "CDH", 37, 81.5, "randomized"),
    ("TWH", "cora", "CM", 17, 59.0, "ineligible"),
    ("TWH", "cora", "CM", 52, 74.0, "consented"),
    ("SHS", "sam", "CDH", 29, 62.0, "randomized"),
    ("SHS", "sam", "CM", 61, 90.0, "randomized"),
    ("SHS", "sam", "CDH", 45, 70.0, "screened"),
)


@dataclass
class DemoSummary:
    database: str
    created: bool
    users: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "created": self.created,
            "password": DEMO_PASSWORD,
            "users": [{"name": n, "role": r} for n, r in self.users],
        }

    def text(self) -> str:
        head = "Built" if self.created else "Kept the existing"
        users = ", ".join(f"{n} ({r})" for n, r in self.users)
        return (
            f"{head} demo KetHead training trial in {self.database}\n"
            f"Users: {users}\nPassword for every demo user: {DEMO_PASSWORD}"
        )


def kethead_protocol() -> LoadedProtocol:
    """The shipped KetHead protocol: from the source tree, or the copy inside the package."""
    repo_copy = Path(__file__).resolve().parents[2] / "protocols" / "kethead.toml"
    if repo_copy.exists():
        return load_protocol(repo_copy)
    text = resources.files("trialkit").joinpath("kethead.toml").read_text("utf-8")
    return protocol_from_text(text, source="kethead.toml")


class DemoClock:
    """The demo's own time: it starts weeks ago, so that baseline diaries, randomization
    and follow-up can all have happened by now, and moves on as the story does."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


def demo_diary(
    first: date, protocol: Protocol, *, count: int | None = None, after_infusion: bool = False
) -> list[DiaryDay]:
    """A made-up but plausible diary from ``first``: ``count`` days (default: a whole
    window); fewer and shorter headaches after the infusion."""
    rules = protocol.diary
    levels = rules.severity_levels
    days: list[DiaryDay] = []
    for i in range(rules.window_days if count is None else count):
        on = first + timedelta(days=i)
        aching = i % 3 == 0 if after_infusion else i % 4 != 3
        if not aching:
            days.append(DiaryDay(on, False, levels[0], 0.0, i % 11 == 5))
            continue
        hours = float(2 + (i * 3) % 7) if after_infusion else float(4 + (i * 5) % 9)
        days.append(DiaryDay(on, True, levels[1 + i % (len(levels) - 1)], hours, i % 5 == 0))
    return days


def _enrol_participants(engine: Engine, clock: DemoClock) -> None:
    protocol = kethead_protocol().protocol
    answers = {c.id: "yes" if c.kind == "inclusion" else "no" for c in answered_criteria(protocol)}
    actors: dict[str, Actor] = {}
    waiting: list[tuple[str, Actor, str]] = []
    for site, who, htype, age, weight, stage in DEMO_PARTICIPANTS:
        if who not in actors:
            with transaction(engine) as s:
                actors[who] = login(s, who, DEMO_PASSWORD, clock=clock)
        actor = actors[who]
        with transaction(engine) as s:
            p = screen(
                s,
                actor,
                site=site,
                age=age,
                sex="F" if age % 2 else "M",
                weight_kg=weight,
                factors={"headache_type": htype},
                answers=answers,
                clock=clock,
            )
        if stage in ("screened", "ineligible"):
            continue
        with transaction(engine) as s:
            consent(
                s,
                actor,
                p.id,
                on=protocol.site_time(site).today(clock.now()),
                form_version=protocol.consent.form_versions[-1],
                clock=clock,
            )
        waiting.append((p.id, actor, stage))
    # The baseline diary: the four weeks between screening and randomization.
    window = protocol.diary.baseline_window
    first = protocol.trial_time.today(clock.now())  # both KetHead sites are in one zone
    clock.advance(timedelta(days=window.end - window.start + 1))
    for pid, actor, stage in waiting:
        # The participant kept only as consented has too short a diary to be randomized.
        count = protocol.diary.baseline_min_days - 4 if stage == "consented" else None
        with transaction(engine) as s:
            record_days(s, actor, pid, demo_diary(first, protocol, count=count), clock=clock)
        if stage == "randomized":
            with transaction(engine) as s:
                randomize(s, actor, pid, clock=clock)


def _prepare_participants(engine: Engine, clock: DemoClock) -> None:
    """The first randomized participant of each site is prepared by phil and checked by pia
    (the others wait in the queue): phil opens the envelope, then records the lots."""
    with transaction(engine) as s:
        phil = login(s, "phil", DEMO_PASSWORD, clock=clock)
        waiting = dispense_queue(s, phil, clock=clock)
    first_per_site: dict[str, str] = {}
    for entry in waiting:
        first_per_site.setdefault(entry.site, entry.participant_id)
    for pid in first_per_site.values():
        with transaction(engine) as s:
            opened = dispense(s, phil, pid, password=DEMO_PASSWORD, clock=clock)
        with transaction(engine) as s:
            dispense(
                s,
                phil,
                pid,
                password=DEMO_PASSWORD,
                clock=clock,
                lots=DEMO_LOTS[opened.arm_code],
                checked_by="pia",
                checker_password=DEMO_PASSWORD,
                print_labels=True,
            )


def _infuse_and_follow_up(engine: Engine, clock: DemoClock) -> None:
    """Participants the pharmacy prepared are infused the same day; their follow-up diary
    runs up to yesterday."""
    protocol = kethead_protocol().protocol
    with transaction(engine) as s:
        prepared = sorted(dispensed_ids(s))
    local = protocol.trial_time  # both KetHead sites are in one zone
    day0 = local.today(clock.now())
    for pid in prepared:
        who = next(u for u, _r, sites, _c in DEMO_USERS if pid.split("-")[0] in sites)
        with transaction(engine) as s:
            actor = login(s, who, DEMO_PASSWORD, clock=clock)
        with transaction(engine) as s:
            # today at the participant's site: the infusion is now
            infuse(s, actor, pid, on=protocol.site_time(pid.split("-")[0]).today(clock.now()),
                   clock=clock)
    clock.advance(SystemClock().now() - clock.now())  # catch up with the real time
    follow_up = (local.today(clock.now()) - day0).days - 1
    for pid in prepared:
        who = next(u for u, _r, sites, _c in DEMO_USERS if pid.split("-")[0] in sites)
        with transaction(engine) as s:
            actor = login(s, who, DEMO_PASSWORD, clock=clock)
            days = demo_diary(day0 + timedelta(days=1), protocol, count=follow_up,
                              after_infusion=True)
            record_days(s, actor, pid, days, clock=clock)


def add_activated_user(
    session: Session,
    admin: Actor,
    *,
    name: str,
    role: Role,
    password: str,
    sites: list[str],
    custodian: bool,
    clock: Clock,
) -> None:
    """What a training trial or a benchmark does in one go: the admin adds the person and the
    person activates the account at once with the code handed over and their own password
    (in a real trial these are two people at two terminals)."""
    account = create_user(
        session, admin, name=name, role=role, sites=sites, custodian=custodian, clock=clock
    )
    activate_user(
        session, name=name, code=account.enrolment_code, new_password=password, clock=clock
    )


def approve_as(session: Session, approver: str, name: str, *, password: str, clock: Clock) -> None:
    """What a training trial or a benchmark does in one go: the custodian reads their key
    fingerprint out and the approver checks it (in a real trial, two people on the phone)."""
    target = find_user(session, name)
    assert target.public_key is not None
    person = actor_for(session, find_user(session, approver))
    approve_custodian(
        session,
        person.signing_with(unlock_signing_key(session, person, password)),
        name=name,
        fingerprint=key_fingerprint(target.public_key),
        password=password,
        clock=clock,
    )


def build_demo(db: str, *, fresh: bool = False, participants: int | None = None) -> DemoSummary:
    """Create the demo trial in ``db``: in a new (or empty) database, or over the demo
    ``trialkit demo`` built there before (kept as it is unless ``fresh``). A database that
    holds any other trial, or anything else, is refused and left untouched: the demo must
    never cost anyone a trial, nor hand out its passwords for one it did not build.

    ``participants``: instead of the small story, a generated history of that many
    participants at every stage (``demo_scale``)."""
    if participants is not None and not 1 <= participants <= MAX_PARTICIPANTS:
        raise InvalidInput(f"--participants {participants}: give 1 to {MAX_PARTICIPANTS}")
    users = [(DEMO_ADMIN, Role.ADMIN.value)] + [(n, r.value) for n, r, _s, _c in DEMO_USERS]
    shown = public_url(db)
    path = sqlite_path(normalize_url(db))
    if path is None or path.exists():
        engine = make_inspecting_engine(db)
        try:
            check_reachable(engine)
            found = found_trial(engine)
            if found is not None and not found.is_demo:
                raise Refused(
                    f"{shown} holds {found.describe()}, not the demo: `trialkit demo` only "
                    "builds a new database or rebuilds its own demo; nothing was changed "
                    "(give another --db)"
                )
            if found is not None and not fresh:
                return DemoSummary(database=shown, created=False, users=users)
        finally:
            engine.dispose()
        if found is not None and path is None:
            writer = make_engine(db)
            try:
                erase(writer)
            finally:
                writer.dispose()
        if found is not None and path is not None:
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                p.unlink(missing_ok=True)
    if participants is not None:
        _build_population(db, participants)
        return DemoSummary(database=shown, created=True, users=users)
    # Late enough that the story (baseline, randomization, follow-up) ends before now.
    clock = DemoClock(SystemClock().now() - timedelta(days=DEMO_DAYS_AGO))
    engine = make_engine(db, must_exist=False)
    try:
        _set_up(engine, clock, DEMO_PER_STRATUM)
        _enrol_participants(engine, clock)
        _prepare_participants(engine, clock)
        _infuse_and_follow_up(engine, clock)
    finally:
        engine.dispose()
    return DemoSummary(database=shown, created=True, users=users)


def _set_up(engine: Engine, clock: DemoClock, per_stratum: int,
            loaded: LoadedProtocol | None = None) -> None:
    """The trial (on ``loaded``, by default KetHead's protocol), its users (one per role) and
    its sealed lists, through the services."""
    initialize(
        engine,
        loaded or kethead_protocol(),
        admin=DEMO_ADMIN,
        admin_password=DEMO_PASSWORD,
        training=True,
        demo=True,
        clock=clock,
    )
    with transaction(engine) as s:
        admin: Actor = login(s, DEMO_ADMIN, DEMO_PASSWORD, clock=clock)
    with transaction(engine) as s:
        for name, role, sites, custodian in DEMO_USERS:
            add_activated_user(
                s,
                admin,
                name=name,
                role=role,
                password=DEMO_PASSWORD,
                sites=list(sites),
                custodian=custodian,
                clock=clock,
            )
    with transaction(engine) as s:
        # iris (an investigator) approves the first custodian, who approves the others
        approve_as(s, "iris", "phil", password=DEMO_PASSWORD, clock=clock)
        for name in ("pia", "ivan"):
            approve_as(s, "phil", name, password=DEMO_PASSWORD, clock=clock)
    with transaction(engine) as s:
        seal_lists(s, admin, per_stratum=per_stratum, block_sizes=None, clock=clock)


_SITE_TARGET = re.compile(r"^target = (\d+).*$", re.MULTILINE)


def scaled_protocol(n: int) -> LoadedProtocol:
    """The training trial's own copy of KetHead's protocol for a demo of ``n`` participants:
    each site's recruitment target is KetHead's scaled from its 56 participants to ``n``
    (rounded up), so that the dashboard's percent of target fits the demo's size. The rest
    of the text, and KetHead's own file, are unchanged."""
    kethead = kethead_protocol()
    planned = sum(s.target for s in kethead.protocol.sites)
    text = _SITE_TARGET.sub(lambda m: f"target = {-(-int(m[1]) * n // planned)}", kethead.text)
    header = (f"# A training copy of the KetHead protocol for `trialkit demo --participants {n}`:"
              f"\n# the site targets are KetHead's scaled from {planned} to {n} participants.\n")
    return protocol_from_text(header + text, source=f"kethead.toml scaled to {n}")


def _build_population(db: str, n: int) -> Generated:
    """The demo trial with a generated history of ``n`` participants (``demo_scale``), on
    its own protocol copy with targets scaled to ``n`` (:func:`scaled_protocol`)."""
    now = SystemClock().now()
    loaded = scaled_protocol(n)
    protocol = loaded.protocol
    coordinators = {site: name for name, _r, sites, _c in DEMO_USERS for site in sites}
    story = plan_population(protocol, n, now=now, seed=n, coordinators=coordinators)
    # A sixth more envelopes than used: lists are never sealed to run out exactly.
    per_stratum = max(DEMO_PER_STRATUM, envelopes_needed(story.plans) * 7 // 6)
    clock = DemoClock(now - timedelta(days=SPAN_DAYS + 3))
    engine = make_engine(db, must_exist=False)
    try:
        _set_up(engine, clock, per_stratum, loaded)
        with transaction(engine) as s:  # who acts in the story signs in
            actors = {name: login(s, name, DEMO_PASSWORD, clock=clock)
                      for name in sorted(set(coordinators.values()) | {"phil", "pia"})}
        clock.advance(now - clock.now())
        with transaction(engine) as s:
            return store_population(s, story, actors=actors, password=DEMO_PASSWORD,
                                    lots=DEMO_LOTS, pharmacist="phil", checker="pia",
                                    clock=clock)
    finally:
        engine.dispose()
