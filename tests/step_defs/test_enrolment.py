"""Steps for ``features/enrolment.feature``: a coordinator screens and records consent,
at her own site only. Every scenario runs on SQLite and, with
TRIALKIT_TEST_PG_URL, on PostgreSQL (the ``db_url`` fixture), through the services that
the command line and the terminal UI call. ``EnrolmentWorld`` is shared with the
randomization steps."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import Engine

from tests.builders import eligible_answers
from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user, sign_in
from trialkit.cli.report_cmds import status_text
from trialkit.domain.errors import InvalidInput, Refused, TrialkitError
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.setup import initialize
from trialkit.services.diary.outcomes import outcomes
from trialkit.services.enrolment.participants import (
    ParticipantView,
    consent,
    list_participants,
    screen,
    withdraw,
)
from trialkit.services.exports.status import TrialStatus, trial_status
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.tui.screens.dashboard import consort_text

scenarios("enrolment.feature")


@dataclass
class EnrolmentWorld:
    """One scenario's trial, who is in it, and what happened last."""

    db_url: str
    clock: SteppingClock
    me: str = ""  # the coordinator who says "I"
    outcome: Any = None  # what the last "When" gave: a result or the error it raised
    kept: dict[str, ParticipantView] = field(default_factory=dict)
    _engine: Engine | None = None
    _actors: dict[str, Actor] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "the trial has not been created in this scenario"
        return self._engine

    def create_trial(self) -> None:
        self._engine = make_engine(self.db_url, must_exist=False)
        initialize(self._engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
                   training=False, clock=self.clock)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def actor(self, name: str) -> Actor:
        """The user, signed in once per scenario (a sign-in costs a password hash)."""
        if name not in self._actors:
            self._actors[name] = sign_in(self.engine, name, self.clock)
        return self._actors[name]

    def add(self, name: str, role: Role, sites: list[str] | None = None) -> None:
        add_user(self.engine, self.actor(ADMIN), self.clock, name, role, sites=sites)

    def attempt(self, action: Callable[[], Any]) -> None:
        """Do what a "When" step says, keeping the result or the refusal."""
        try:
            self.outcome = action()
        except TrialkitError as err:
            self.outcome = err

    def error(self, kind: type[TrialkitError]) -> TrialkitError:
        assert isinstance(self.outcome, kind), f"expected {kind.__name__}, got {self.outcome!r}"
        return self.outcome

    def screen(self, site: str, *, by: str | None = None, headache_type: str = "CM",
               **changes: Any) -> ParticipantView:
        """Screen a 40-year-old woman of 70 kg who meets every criterion, but for ``changes``."""
        given = {"age": 40, "sex": "F", "weight_kg": 70.0,
                 "factors": {"headache_type": headache_type},
                 "answers": eligible_answers() | changes.pop("answers", {})}
        with transaction(self.engine) as s:
            return screen(s, self.actor(by or self.me), site=site, clock=self.clock,
                          **(given | changes))

    def consent(self, pid: str, *, by: str | None = None, days: int = 0,
                form: str = "2.0") -> ParticipantView:
        with transaction(self.engine) as s:
            return consent(s, self.actor(by or self.me), pid, form_version=form,
                           on=self.clock.now().date() + timedelta(days=days), clock=self.clock)

    def participants(self, who: str | None = None) -> dict[str, ParticipantView]:
        with read_only(self.engine) as s:
            return {v.id: v for v in list_participants(s, self.actor(who or ADMIN))}


@pytest.fixture(autouse=True)
def world(db_url: str, clock: SteppingClock) -> Iterator[EnrolmentWorld]:
    """Autouse, so that every scenario is collected once per backend of ``db_url``."""
    w = EnrolmentWorld(db_url=db_url, clock=clock)
    yield w
    w.close()


# How the feature describes someone who differs from a fully eligible participant.
DIFFERENCES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], dict[str, Any]]]] = [
    (re.compile(r"is (\d+) years old"), lambda m: {"age": int(m[1])}),
    (re.compile(r'answers (\w+) to "(\w+)"'), lambda m: {"answers": {m[2]: m[1]}}),
]


def differences(text: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for part in text.split(" and "):
        matches = [(make, p.fullmatch(part)) for p, make in DIFFERENCES if p.fullmatch(part)]
        assert len(matches) == 1, f"the steps do not know how someone {part!r}"
        make, found = matches[0]
        assert found is not None
        for key, value in make(found).items():
            changes[key] = changes.get(key, {}) | value if key == "answers" else value
    return changes


# --- Background ------------------------------------------------------------------------------


@given(parsers.parse('the KetHead trial is running at the sites "{one}" and "{other}"'))
def trial_running(world: EnrolmentWorld, one: str, other: str) -> None:
    world.create_trial()
    assert {s for s in (one, other)} == {"TWH", "SHS"}


@given(parsers.parse('I am "{name}", a coordinator at "{site}"'))
def i_am_a_coordinator(world: EnrolmentWorld, name: str, site: str) -> None:
    world.add(name, Role.COORDINATOR, [site])
    world.me = name


# --- screening ----------------------------------------------------------------------------------


@when(parsers.parse('I screen a 40-year-old woman weighing 70 kg with chronic migraine at '
                    '"{site}" who meets every criterion'))
def screen_eligible(world: EnrolmentWorld, site: str) -> None:
    world.attempt(lambda: world.screen(site))


@when(parsers.parse('I screen someone at "{site}" who {differs}'))
def screen_someone(world: EnrolmentWorld, site: str, differs: str) -> None:
    changes = differences(differs)
    world.attempt(lambda: world.screen(site, **changes))


@given(parsers.parse('"{name}", a coordinator at "{site}", has screened a participant at '
                     '"{where}"'))
def colleague_screened(world: EnrolmentWorld, name: str, site: str, where: str) -> None:
    world.add(name, Role.COORDINATOR, [site])
    v = world.screen(where, by=name)
    world.kept[v.id] = v


@given(parsers.parse('I have screened "{pid}", who is eligible'))
def screened_eligible(world: EnrolmentWorld, pid: str) -> None:
    assert world.screen("TWH").id == pid


@given(parsers.parse('I have screened "{pid}", who is {age:d} years old'))
def screened_aged(world: EnrolmentWorld, pid: str, age: int) -> None:
    assert world.screen("TWH", age=age).id == pid


@then(parsers.parse('she is given the participant id "{pid}"'))
def given_id(world: EnrolmentWorld, pid: str) -> None:
    assert isinstance(world.outcome, ParticipantView), world.outcome
    assert world.outcome.id == pid


@then(parsers.parse('she is eligible, in the stratum "{stratum}"'))
def is_eligible(world: EnrolmentWorld, stratum: str) -> None:
    assert (world.outcome.eligible, world.outcome.failed) == (True, ())
    assert world.outcome.stratum == stratum


@then(parsers.parse('she is not eligible, because she does not meet "{criteria}"'))
def not_eligible(world: EnrolmentWorld, criteria: str) -> None:
    assert world.outcome.eligible is False
    assert world.outcome.failed == tuple(c.strip() for c in criteria.split(","))


@then(parsers.parse('my list of participants shows "{pid}" as "{status}"'))
def listed_as(world: EnrolmentWorld, pid: str, status: str) -> None:
    assert world.participants(world.me)[pid].status == status


@then(parsers.parse('my list of participants holds "{pids}" only'))
def listed_only(world: EnrolmentWorld, pids: str) -> None:
    mine = [p.strip() for p in pids.split(",")]
    assert list(world.participants(world.me)) == mine
    assert list(world.participants(ADMIN)) == ["SHS-001", *mine]  # the other site's too


@then(parsers.parse('I am told the input is wrong: "{message}"'))
def told_input_wrong(world: EnrolmentWorld, message: str) -> None:
    err = world.error(InvalidInput)
    assert message in err.message and err.exit_code == 2


@then(parsers.parse('I am refused: "{message}"'))
def refused(world: EnrolmentWorld, message: str) -> None:
    err = world.error(Refused)
    assert (err.message, err.exit_code) == (message, 1)


@then("no participant has been recorded")
def nobody_recorded(world: EnrolmentWorld) -> None:
    assert world.participants() == {}


# --- consent -------------------------------------------------------------------------------

DAYS = {"yesterday": -1, "today": 0, "tomorrow": 1}  # as the coordinator says it


@when(parsers.parse('I record that "{pid}" consented {when} on form version "{form}"'))
def record_consent(world: EnrolmentWorld, pid: str, when: str, form: str) -> None:
    world.attempt(lambda: world.consent(pid, days=DAYS[when], form=form))


# --- other sites -----------------------------------------------------------------------------


@when(parsers.parse('I try to record the consent of "{pid}"'))
def try_to_consent(world: EnrolmentWorld, pid: str) -> None:
    world.attempt(lambda: world.consent(pid))


@then(parsers.parse('"{pid}" is just as "{name}" left her'))
def unchanged(world: EnrolmentWorld, pid: str, name: str) -> None:
    assert world.participants(name)[pid] == world.kept[pid]


# --- one status in every view ----------------------------------------------------------------


@given(parsers.parse('"{pid}" has consented'))
def has_consented(world: EnrolmentWorld, pid: str) -> None:
    assert world.consent(pid).status == "consented"


@when(parsers.parse('I withdraw "{pid}" because "{reason}"'))
def withdraw_because(world: EnrolmentWorld, pid: str, reason: str) -> None:
    def run() -> ParticipantView:
        with transaction(world.engine) as s:
            return withdraw(s, world.actor(world.me), pid, reason=reason, clock=world.clock)

    world.attempt(run)


@then(parsers.parse('her outcomes show her as "{status}"'))
def outcomes_show(world: EnrolmentWorld, status: str) -> None:
    assert isinstance(world.outcome, ParticipantView), world.outcome
    with read_only(world.engine) as s:
        shown = outcomes(s, world.actor(world.me), world.outcome.id, clock=world.clock)
    assert shown.status == status


def _status(world: EnrolmentWorld) -> TrialStatus:
    with read_only(world.engine) as s:
        return trial_status(s, world.actor(world.me), clock=world.clock)


@then(parsers.parse('the status report counts {at_site:d} withdrawn at "{site}" and '
                    '{everyone:d} withdrawn in all'))
def status_report_counts(world: EnrolmentWorld, at_site: int, site: str, everyone: int) -> None:
    st = _status(world)
    assert [e.withdrawn for e in st.sites if e.code == site] == [at_site]
    all_row = next(line.split() for line in status_text(st).splitlines()
                   if line.strip().startswith("all "))
    assert int(all_row[5]) == everyone  # the command line's "withdrawn" column


@then(parsers.parse("the CONSORT flow counts {before:d} who withdrew before randomization and "
                    "{after:d} after it"))
def consort_counts(world: EnrolmentWorld, before: int, after: int) -> None:
    c = _status(world).consort
    assert (c.withdrew_before_randomization, c.withdrawn) == (before, after)
    text = status_text(_status(world))
    # CONSORT 2010's rows: those who left after randomization are "Discontinued"; the
    # withdrawn total counts both sides of randomization
    assert re.search(rf"Discontinued \(withdrew\)\s+{after}\b", text)
    assert re.search(rf"Withdrawn \(all\)\s+{before + after}\b", text)


@then(parsers.parse("the dashboard's CONSORT counts {n:d} withdrawn"))
def dashboard_counts(world: EnrolmentWorld, n: int) -> None:
    text = consort_text(_status(world).consort)
    assert re.search(rf"^Withdrawn \(all\)\s+{n}$", text, re.MULTILINE)
