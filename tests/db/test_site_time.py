"""Dates and times at a Toronto site, on both backends: "today" for a diary, consent and
infusion, the date of randomization (day 0 of the baseline window) and the times on a
label are Toronto's, not UTC's. Expected values are worked out by hand from the rule
(EST = UTC-5; EDT = UTC-4 from 2026-03-08 07:00 UTC to 2026-11-01 06:00 UTC).

A Toronto evening is already tomorrow in UTC: at 2026-03-03T04:30Z it is 23:30 EST on
2026-03-02, so 2026-03-03 is still in the future there."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.builders import baseline_days, eligible_answers
from tests.conftest import ADMIN, BACKENDS, KETHEAD, PASSWORD, SteppingClock, enrol, sign_in
from tests.db.test_allocation import Box, World, build_world, window
from tests.db.test_diary import HEADER, dispensed, enrolled, refused
from trialkit.domain.diary import DiaryDay
from trialkit.domain.errors import InvalidInput
from trialkit.domain.protocol import protocol_from_text
from trialkit.domain.roles import Role
from trialkit.render.labels import render_labels
from trialkit.services.actor import Actor
from trialkit.services.administration.database_lock import lock_database
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import login
from trialkit.services.administration.trial import stored_protocol
from trialkit.services.diary.entries import history, infuse, record_day
from trialkit.services.diary.file_import import import_diary, record_days
from trialkit.services.diary.outcomes import outcomes
from trialkit.services.enrolment.participants import consent, randomize, screen
from trialkit.services.pharmacy.dispensing import dispense_queue, print_labels
from trialkit.store.db import make_engine, transaction


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def trial(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with build_world(request.param, tmp_path_factory.mktemp("tz"), per_stratum=3) as w:
        with transaction(w.engine) as s:  # a second pharmacist checks each preparation
            enrol(s, w.actors[ADMIN], SteppingClock(w.at), "pia", Role.PHARMACIST,
                  password=PASSWORD)
        yield w


@pytest.fixture
def box(trial: World) -> Iterator[Box]:
    with window(trial) as b:
        yield b


def screened_at(box: Box, instant: str) -> str:
    box.clock.at = z(instant)
    return box.screen().id


def consent_on(box: Box, pid: str, on: date) -> None:
    with box.tx() as s:
        consent(s, box.actor("cora"), pid, on=on, form_version="2.0", clock=box.clock)


def no_headache(on: date) -> DiaryDay:
    return DiaryDay(on, False, "none", 0.0, False)


# --- consent ---------------------------------------------------------------------------------


def test_consent_today_is_torontos_today_not_utcs(box: Box) -> None:
    pid = screened_at(box, "2026-03-02T23:30Z")  # 18:30 EST, 2 March
    box.clock.at = z("2026-03-03T04:30Z")  # 23:30 EST, still 2 March in Toronto
    err = refused(box, InvalidInput, consent_on, box, pid, date(2026, 3, 3))
    assert err.message == "consent date 2026-03-03 is in the future (today is 2026-03-02)"
    consent_on(box, pid, date(2026, 3, 2))


def test_a_person_screened_in_the_evening_consents_the_same_local_day(box: Box) -> None:
    # 21:00 EST on 2 March is 02:00 UTC on 3 March: screening was on the 2nd in Toronto
    pid = screened_at(box, "2026-03-03T02:00Z")
    consent_on(box, pid, date(2026, 3, 2))
    err = refused(box, InvalidInput, consent_on, box, screened_at(box, "2026-03-03T02:00Z"),
                  date(2026, 3, 1))
    assert err.message == "consent date 2026-03-01 is before screening (2026-03-02)"


# --- the diary -------------------------------------------------------------------------------


def test_a_diary_day_recorded_at_20_00_toronto_time_is_that_local_date(box: Box) -> None:
    pid = screened_at(box, "2026-03-02T14:00Z")  # 09:00 EST
    consent_on(box, pid, date(2026, 3, 2))
    box.clock.at = z("2026-03-10T00:00Z")  # 20:00 EDT on 9 March (daylight time since the 8th)
    with box.tx() as s:
        recorded = record_day(s, box.actor("cora"), pid, no_headache(date(2026, 3, 9)),
                              clock=box.clock)
    assert recorded.date == date(2026, 3, 9)

    def tomorrow() -> None:
        with box.tx() as s:
            record_day(s, box.actor("cora"), pid, no_headache(date(2026, 3, 10)),
                       clock=box.clock)

    err = refused(box, InvalidInput, tomorrow)
    assert err.message == f"{pid}: date 2026-03-10 is in the future (today is 2026-03-09)"
    # the same rule for a file, and for the history's "recorded at": 20:00 EDT
    with pytest.raises(InvalidInput, match="is in the future") as caught:
        with box.tx() as s:
            import_diary(s, box.actor("cora"), f"{HEADER}{pid},2026-03-10,no,,,no\n".encode(),
                         source="diary.csv", clock=box.clock)
    assert "today is 2026-03-09" in str(caught.value)
    with box.tx() as s:
        (version,) = history(s, box.actor("cora"), pid)
    assert version.recorded_at.strftime("%Y-%m-%d %H:%M %Z") == "2026-03-09 20:00 EDT"


# --- randomization: day 0 is the local date --------------------------------------------------


def test_randomized_in_the_evening_day_0_is_the_local_date(box: Box) -> None:
    pid = screened_at(box, "2026-03-02T14:00Z")
    consent_on(box, pid, date(2026, 3, 2))
    box.clock.at = z("2026-03-30T01:30Z")  # 21:30 EDT on 29 March
    with box.tx() as s:  # 2 to 29 March: today's day may already be recorded
        record_days(s, box.actor("cora"), pid, baseline_days(date(2026, 3, 2)),
                    clock=box.clock)
    with box.tx() as s:
        randomize(s, box.actor("cora"), pid, clock=box.clock)
    with box.tx() as s:
        result = outcomes(s, box.actor("cora"), pid, clock=box.clock)
        queue = {e.participant_id: e
                 for e in dispense_queue(s, box.actor("phil"), clock=box.clock)}
    assert result.randomized_on == date(2026, 3, 29)
    baseline = next(w for w in result.windows if w.window == "BASELINE")
    # the 28 days before day 0: 1 to 28 March; the diary starts at consent (2 March), so
    # 2 to 28 March are expected, and all of them were recorded
    assert (baseline.start, baseline.end) == (date(2026, 3, 1), date(2026, 3, 28))
    assert (baseline.days_expected, baseline.days_recorded) == (27, 27)
    assert queue[pid].randomized_at.strftime("%Y-%m-%d %H:%M %Z") == "2026-03-29 21:30 EDT"


# --- the infusion ----------------------------------------------------------------------------


def test_an_infusion_today_is_torontos_today(box: Box) -> None:
    pid = enrolled(box)
    dispensed(box, pid)
    here = box.clock.now()
    assert here.hour >= 9  # the world's clock runs in the morning UTC: the same date in Toronto
    # 03:00 UTC the next day is 23:00 EDT (or 22:00 EST) on today's date in Toronto
    box.clock.at = datetime.combine(here.date() + timedelta(days=1), time(3), UTC)
    local_today = here.date()

    def infuse_tomorrow() -> None:
        with box.tx() as s:
            infuse(s, box.actor("cora"), pid, on=box.clock.now().date(), clock=box.clock)

    err = refused(box, InvalidInput, infuse_tomorrow)
    assert err.message == (f"infusion date {box.clock.now().date()} is in the future "
                           f"(today is {local_today})")
    with box.tx() as s:
        assert infuse(s, box.actor("cora"), pid, on=local_today, clock=box.clock) == local_today


# --- labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prepared", "shown_prepared", "shown_expires"),
    [
        # the label: 07:24 UTC is 03:24 in Toronto in June; KetHead expires in 24 h
        ("2026-06-10T07:24Z", "2026-06-10 03:24 EDT", "2026-06-11 03:24 EDT"),
        ("2026-11-20T23:30Z", "2026-11-20 18:30 EST", "2026-11-21 18:30 EST"),
        # across the end of daylight time: 24 hours later the wall clock reads an hour less
        ("2026-10-31T12:00Z", "2026-10-31 08:00 EDT", "2026-11-01 07:00 EST"),
    ],
)
def test_a_label_for_a_toronto_site_shows_toronto_time(
    box: Box, prepared: str, shown_prepared: str, shown_expires: str
) -> None:
    pid = enrolled(box)
    box.clock.at = z(prepared)
    dispensed(box, pid)
    with box.tx() as s:
        sheet = print_labels(s, box.actor("phil"), pid, clock=box.clock)
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(render_labels(sheet))).pages]
    assert pages
    for text in pages:
        assert f"Prepared {shown_prepared}" in text
        assert f"Expires {shown_expires}" in text
        assert "UTC" not in text


def test_the_lock_is_shown_in_toronto_time(box: Box) -> None:
    box.clock.at = z("2026-07-01T02:15Z")  # 22:15 EDT on 30 June
    ivy = investigator(box)
    with box.tx() as s:
        result = lock_database(s, ivy, clock=box.clock)
    assert result.locked_at.strftime("%Y-%m-%d %H:%M %Z") == "2026-06-30 22:15 EDT"
    assert result.locked_at == z("2026-07-01T02:15Z")  # the same instant


def investigator(box: Box) -> Actor:
    with box.tx() as s:
        enrol(s, box.actor(ADMIN), box.clock, "ivy", Role.INVESTIGATOR, password=PASSWORD)
    with box.tx() as s:
        return login(s, "ivy", PASSWORD, clock=box.clock)


# --- databases created before sites had a time zone ------------------------------------------


def test_a_trial_stored_without_time_zones_keeps_running_on_utc(tmp_path: Path) -> None:
    old = Path(KETHEAD).read_text(encoding="utf-8").replace('timezone = "America/Toronto"\n', "")
    clock = SteppingClock(z("2026-03-02T23:30Z"))
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}", must_exist=False)
    try:
        initialize(engine, protocol_from_text(old, "kethead.toml", stored=True), admin=ADMIN,
                   admin_password=PASSWORD, training=False, clock=clock)
        admin = sign_in(engine, ADMIN, clock)
        with transaction(engine) as s:
            assert [st.timezone for st in stored_protocol(s).sites] == ["UTC", "UTC"]
            enrol(s, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"], password=PASSWORD)
        cora = sign_in(engine, "cora", clock)
        with transaction(engine) as s:
            pid = screen(s, cora, site="TWH", age=40, sex="F", weight_kg=70.0,
                         factors={"headache_type": "CM"}, answers=eligible_answers(),
                         clock=clock).id
        clock.at = z("2026-03-03T04:30Z")
        with transaction(engine) as s:  # on UTC it is already 3 March, as it always was
            consent(s, cora, pid, on=date(2026, 3, 3), form_version="2.0", clock=clock)
    finally:
        engine.dispose()
