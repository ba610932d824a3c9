"""Steps for ``features/site_time.feature``: a Toronto coordinator's "today" and a Toronto
pharmacist's label times. Both backends, through the services; the Background steps are
those of ``test_diary.py``. A step that sets the time names the instant in UTC as well as on
the Toronto wall clock, and uses only the UTC one: the conversion is what is under test."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from pypdf import PdfReader
from pytest_bdd import given, parsers, scenarios, then, when

from tests.conftest import PASSWORD
from tests.step_defs import test_diary as diary_steps
from tests.step_defs.test_diary import PROTOCOL, DiaryWorld, on
from trialkit.render.labels import LabelSheet, render_labels
from trialkit.services.enrolment.participants import consent, list_participants
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.store.db import read_only, transaction

scenarios("site_time.feature")

globals().update(diary_steps.step_fixtures())
world = diary_steps.world


@given(parsers.re(r"the clock in Toronto says (?P<local>.+) \((?P<utc>[\d-]+ [\d:]+) UTC\)"))
def it_is_in_toronto(world: DiaryWorld, local: str, utc: str) -> None:
    at = datetime.strptime(utc, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert at >= world.clock.now(), f"the scenario goes back in time to {local}"
    world.clock.at = at


@given(parsers.parse('I have screened "{pid}"'))
def have_screened(world: DiaryWorld, pid: str) -> None:
    assert world.screen("TWH").id == pid


@given(parsers.parse('"{pid}" has been randomized'))
def has_been_randomized(world: DiaryWorld, pid: str) -> None:
    world.go_to(on("30 March 2026"))
    world.baseline(pid, 28, 20)
    world.randomize(pid)


@when(parsers.parse('I record the consent of "{pid}" dated {day}'))
def record_consent(world: DiaryWorld, pid: str, day: str) -> None:
    def act() -> None:
        with transaction(world.engine) as s:
            consent(s, world.actor(world.me), pid, on=on(day), form_version="2.0",
                    clock=world.clock)

    world.attempt(act)


@then(parsers.parse('"{pid}" has consented on {day}'))
def has_consented(world: DiaryWorld, pid: str, day: str) -> None:
    with read_only(world.engine) as s:
        seen = {v.id: v for v in list_participants(s, world.actor(world.me))}
    assert seen[pid].consent_date == day


@then(parsers.parse('the diary of "{pid}" for {day} is recorded at "{shown}"'))
def recorded_at(world: DiaryWorld, pid: str, day: str, shown: str) -> None:
    (version,) = world.history(pid, on(day))
    assert version.recorded_at.strftime("%Y-%m-%d %H:%M %Z") == shown


@when(parsers.parse('the pharmacist "{name}" records the preparation of "{pid}", checked by '
                    '"{checker}", and prints its labels'))
def prepare_and_print(world: DiaryWorld, name: str, pid: str, checker: str) -> None:
    lots = {p.id: "LOT-7" for p in PROTOCOL.dosing.preparations}
    with transaction(world.engine) as s:
        done = dispense(s, world.actor(name), pid, password=PASSWORD, clock=world.clock,
                        lots=lots, checked_by=checker, checker_password=PASSWORD,
                        print_labels=True)
    world.outcome = done.labels


@then(parsers.parse('both labels say "{prepared}" and "{expires}"'))
def labels_say(world: DiaryWorld, prepared: str, expires: str) -> None:
    assert isinstance(world.outcome, LabelSheet)
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(render_labels(world.outcome))).pages]
    assert len(pages) == len(PROTOCOL.dosing.preparations)
    for text in pages:
        assert prepared in text and expires in text
        assert "UTC" not in text
