"""Steps for ``features/diary.feature``: a coordinator enters and corrects diary days,
imports a diary file, and randomization waits for the baseline diary. Every scenario runs
on SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL (the ``db_url`` fixture), through
the services the command line and the terminal UI call. ``DiaryWorld`` and the Background
steps are shared with ``test_outcomes.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.builders import PROTOCOL, record_baseline
from tests.conftest import ADMIN, PASSWORD, SteppingClock
from tests.step_defs.test_enrolment import EnrolmentWorld
from trialkit.domain.diary import DiaryDay
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.domain.roles import Role
from trialkit.services.diary.entries import DiaryVersion, history, infuse, record_day
from trialkit.services.diary.file_import import ImportRejected, import_diary
from trialkit.services.diary.outcomes import ParticipantOutcomes, outcomes
from trialkit.services.enrolment.allocation import seal_lists
from trialkit.services.enrolment.participants import Randomization, randomize
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.store.db import read_only, transaction

scenarios("diary.feature")

COLUMNS = ("participant_id", "date", "headache", "severity", "duration_hours",
           "acute_medication")
# "a moderate headache of 3 hours, no acute medication", "no headache"
DAY_WORDS = re.compile(r"no headache|a (?P<severity>\w+) headache of (?P<hours>[\d.]+) hours?, "
                       r"(?P<acute>no|with) acute medication")


def on(text: str, year: int = 2026) -> date:
    """'9 March' or '9 March 2026' as a date."""
    words = text.split()
    return datetime.strptime(" ".join(words if len(words) == 3 else [*words, str(year)]),
                             "%d %B %Y").replace(tzinfo=UTC).date()


@dataclass
class DiaryWorld(EnrolmentWorld):
    """One scenario's trial, as the coordinator "I" keeps its diaries."""

    def create_trial_with_lists(self) -> None:
        self.create_trial()
        self.add("phil", Role.PHARMACIST)  # before sealing: custodians get the list keys
        self.add("pia", Role.PHARMACIST)
        with transaction(self.engine) as s:
            seal_lists(s, self.actor(ADMIN), per_stratum=2, block_sizes=None, clock=self.clock)

    def go_to(self, day: date) -> None:
        """Move the clock on to 09:00 UTC of ``day`` (time never goes back)."""
        target = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        assert target >= self.clock.now(), f"the scenario goes back in time to {day}"
        self.clock.at = target

    def enter(self, pid: str, day: DiaryDay, reason: str | None = None) -> Any:
        with transaction(self.engine) as s:
            return record_day(s, self.actor(self.me), pid, day, reason=reason, clock=self.clock)

    def import_rows(self, rows: list[list[str]]) -> Any:
        text = "\n".join(",".join(row) for row in rows) + "\n"
        with transaction(self.engine) as s:
            return import_diary(s, self.actor(self.me), text.encode(), source="diary.csv",
                                clock=self.clock)

    def history(self, pid: str, day: date | None = None) -> list[DiaryVersion]:
        with read_only(self.engine) as s:
            return history(s, self.actor(self.me), pid, on=day)

    def baseline(self, pid: str, days: int, headache_days: int) -> None:
        record_baseline(self.engine, self.actor(self.me), self.clock, pid, days=days,
                        headache_days=headache_days)

    def randomize(self, pid: str) -> Randomization:
        with transaction(self.engine) as s:
            return randomize(s, self.actor(self.me), pid, clock=self.clock)

    def dispense_and_infuse(self, pid: str) -> None:
        lots = {p.id: "LOT-7" for p in PROTOCOL.dosing.preparations}
        with transaction(self.engine) as s:
            dispense(s, self.actor("phil"), pid, password=PASSWORD, clock=self.clock,
                     lots=lots, checked_by="pia", checker_password=PASSWORD)
        with transaction(self.engine) as s:
            infuse(s, self.actor(self.me), pid, on=self.clock.now().date(), clock=self.clock)

    def outcomes(self, pid: str) -> ParticipantOutcomes:
        with read_only(self.engine) as s:
            return outcomes(s, self.actor(self.me), pid, clock=self.clock)


@pytest.fixture(autouse=True)
def world(db_url: str, clock: SteppingClock) -> Iterator[DiaryWorld]:
    """Autouse, so that every scenario is collected once per backend of ``db_url``."""
    w = DiaryWorld(db_url=db_url, clock=clock)
    yield w
    w.close()


def step_fixtures() -> dict[str, Any]:
    """This module's step definitions, for a module that shares the Background."""
    return {k: v for k, v in globals().items() if k.startswith("pytestbdd_stepdef_")}


def day_of(when: date, words: str) -> DiaryDay:
    found = DAY_WORDS.fullmatch(words)
    assert found, f"the steps do not know the day {words!r}"
    if found[0] == "no headache":
        return DiaryDay(when, False, "none", 0.0, False)
    return DiaryDay(when, True, found["severity"], float(found["hours"]),
                    found["acute"] == "with")


# --- Background -------------------------------------------------------------------------------


@given(parsers.parse('the KetHead trial is running at "{site}" with sealed allocation lists'))
def trial_with_lists(world: DiaryWorld, site: str) -> None:
    world.create_trial_with_lists()
    assert site in PROTOCOL.site_codes


@given(parsers.parse('I am "{name}", a coordinator at "{site}"'))
def i_am_a_coordinator(world: DiaryWorld, name: str, site: str) -> None:
    world.add(name, Role.COORDINATOR, [site])
    world.me = name


@given(parsers.parse('I screened "{pid}" on {day}, who consented the same day'))
def screened_and_consented(world: DiaryWorld, pid: str, day: str) -> None:
    world.go_to(on(day))
    assert world.screen("TWH").id == pid
    world.consent(pid)


@given(parsers.parse("it is {day}"))
def it_is(world: DiaryWorld, day: str) -> None:
    world.go_to(on(day))


# --- entering and correcting ------------------------------------------------------------------


@given(parsers.re(r'I have entered for "(?P<pid>[^"]+)" on (?P<day>\d+ \w+): (?P<what>.+)'))
def have_entered(world: DiaryWorld, pid: str, day: str, what: str) -> None:
    world.enter(pid, day_of(on(day), what))


@when(parsers.re(r'I enter for "(?P<pid>[^"]+)" on (?P<day>\d+ \w+): (?P<what>.+?)'
                 r'(?:, because "(?P<reason>[^"]*)")?'))
def enter(world: DiaryWorld, pid: str, day: str, what: str, reason: str | None) -> None:
    world.attempt(lambda: world.enter(pid, day_of(on(day), what), reason))


def current(world: DiaryWorld, pid: str, day: str) -> DiaryVersion:
    [now] = [v for v in world.history(pid, on(day)) if v.current]
    return now


@then(parsers.parse('the diary of "{pid}" for {day} shows a {severity} headache of '
                    "{hours:g} hours"))
def diary_shows(world: DiaryWorld, pid: str, day: str, severity: str, hours: float) -> None:
    v = current(world, pid, day)
    assert (v.headache, v.severity, v.duration_hours) == (True, severity, hours)


@then(parsers.re(r"(?P<day>\d+ \w+) is (?P<negation>not )?counted as a headache day"))
def counted(world: DiaryWorld, day: str, negation: str | None) -> None:
    assert current(world, "TWH-001", day).headache_day is (negation is None)


@then(parsers.parse('the history of "{pid}" for {day} shows the {old:g} hours entered first, '
                    'no longer current, and the {new:g} hours entered by "{who}" with the '
                    'reason "{reason}"'))
def history_kept(world: DiaryWorld, pid: str, day: str, old: float, new: float, who: str,
                 reason: str) -> None:
    first, second = world.history(pid, on(day))
    assert (first.version, first.current, first.duration_hours, first.reason) == (
        1, False, old, None)
    assert (second.version, second.current, second.duration_hours, second.recorded_by,
            second.reason) == (2, True, new, who, reason)


@then(parsers.parse('the history of "{pid}" for {day} holds one entry'))
def history_one(world: DiaryWorld, pid: str, day: str) -> None:
    assert len(world.history(pid, on(day))) == 1


@then(parsers.parse('I am told the input is wrong: "{message}"'))
def told_input_wrong(world: DiaryWorld, message: str) -> None:
    err = world.error(InvalidInput)
    assert (err.message, err.exit_code) == (message, 2)


# --- importing a file -------------------------------------------------------------------------


@when("I import this diary file:")
def import_file(world: DiaryWorld, datatable: list[list[str]]) -> None:
    assert tuple(datatable[0]) == COLUMNS
    world.attempt(lambda: world.import_rows(datatable))


@then("the file is refused with these problems:")
def file_refused(world: DiaryWorld, datatable: list[list[str]]) -> None:
    err = world.error(ImportRejected)
    assert isinstance(err, ImportRejected)
    assert err.problems == [row[0] for row in datatable[1:]]
    assert err.exit_code == 2


@then(parsers.parse('no diary day of "{pid}" has been recorded'))
def nothing_recorded(world: DiaryWorld, pid: str) -> None:
    assert world.history(pid) == []


# --- the baseline gate ------------------------------------------------------------------------


@given(parsers.parse('"{pid}" kept her diary on {days:d} of the 28 days before today, with '
                     "headache on {aching:d} of them"))
def kept_some_days(world: DiaryWorld, pid: str, days: int, aching: int) -> None:
    world.baseline(pid, days, aching)


@given(parsers.parse('"{pid}" kept her diary on all 28 days before today, with headache on '
                     "{aching:d} of them"))
def kept_every_day(world: DiaryWorld, pid: str, aching: int) -> None:
    world.baseline(pid, 28, aching)


@when(parsers.parse('I randomize "{pid}"'))
def i_randomize(world: DiaryWorld, pid: str) -> None:
    world.attempt(lambda: world.randomize(pid))


@then(parsers.parse('I am refused: "{message}"'))
def refused(world: DiaryWorld, message: str) -> None:
    err = world.error(Refused)
    assert (err.message, err.exit_code) == (message, 1)


@then(parsers.parse('"{pid}" has no randomization number'))
def not_randomized(world: DiaryWorld, pid: str) -> None:
    assert world.participants(world.me)[pid].randomization_number is None


@then(parsers.parse('she is given the randomization number "{number}"'))
def given_number(world: DiaryWorld, number: str) -> None:
    assert isinstance(world.outcome, Randomization), world.outcome
    assert (world.outcome.randomization_number, world.outcome.already) == (number, False)


# --- the diary starts at consent ------------------------------------------------------------


@given(parsers.re(r'I screened "(?P<pid>[^"]+)" today, who (?P<answer>consented the same day|'
                  r"has not consented yet)"))
def screened_today(world: DiaryWorld, pid: str, answer: str) -> None:
    assert world.screen("TWH").id == pid
    if answer == "consented the same day":
        world.consent(pid)


@given(parsers.parse('"{pid}" kept her diary every day from {first} to {last}, with headache '
                     "on {aching:d} of them"))
def kept_from_to(world: DiaryWorld, pid: str, first: str, last: str, aching: int) -> None:
    start, days = on(first), (on(last) - on(first)).days + 1
    rows = [[pid, (start + timedelta(days=i)).isoformat(),
             *(["yes", "severe", "5"] if i < aching else ["no", "", ""]), "no"]
            for i in range(days)]
    world.import_rows([list(COLUMNS), *rows])


@then(parsers.parse('the baseline of "{pid}" runs from {first} to {last}, with {due:d} days '
                    "due and {recorded:d} recorded"))
def baseline_runs(world: DiaryWorld, pid: str, first: str, last: str, due: int,
                  recorded: int) -> None:
    base = world.outcomes(pid).windows[0]
    assert (base.window, base.start, base.end, base.days_expected, base.days_recorded) == (
        PROTOCOL.diary.baseline_window.code, on(first), on(last), due, recorded)
