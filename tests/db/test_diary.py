"""The headache diary and the infusion as the coordinator records them, on both backends:
a day is recorded once and corrected only with a reason (the old version stays), a file
is imported whole or not at all, randomization waits for an eligible baseline diary, the
infusion starts the outcome windows, and the outcomes are derived as the protocol says.
Every refusal changes nothing; every write is audited and ``audit verify`` still holds.

The trial (three envelopes sealed per stratum) is built once per backend; each test works
in a window on it that is rolled back (see ``tests/db/test_allocation.py``)."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Date, bindparam, text
from sqlmodel import col, select

from tests.builders import PROTOCOL, baseline_days, baseline_in
from tests.conftest import BACKENDS, PASSWORD, enrol
from tests.db.test_allocation import (
    WORK,
    Box,
    World,
    build_world,
    refused_changing_nothing,
    window,
)
from trialkit.domain.diary import DiaryDay
from trialkit.domain.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    Refused,
    TrialkitError,
)
from trialkit.domain.roles import Role
from trialkit.services.administration.sign_in import login
from trialkit.services.diary.entries import history, infuse, record_day
from trialkit.services.diary.file_import import ImportRejected, import_diary, record_days
from trialkit.services.diary.outcomes import outcomes
from trialkit.services.enrolment.participants import list_participants, withdraw
from trialkit.services.exports.datasets import ExportFiles, export_table
from trialkit.services.integrity import verification
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.store.db import transaction
from trialkit.store.models import AuditEvent, DiaryEntry, Participant, Trial

HEADER = "participant_id,date,headache,severity,duration_hours,acute_medication\n"
RULES = PROTOCOL.diary


@pytest.fixture(scope="module", params=BACKENDS)
def trial(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with build_world(request.param, tmp_path_factory.mktemp("diary"), per_stratum=3) as w:
        with transaction(w.engine) as s:  # a second pharmacist checks each preparation
            enrol(s, w.actors["alice"], _Fixed(w.at), "pia", Role.PHARMACIST,
                  password=PASSWORD)
            enrol(s, w.actors["alice"], _Fixed(w.at), "ivan", Role.INVESTIGATOR,
                  password=PASSWORD)
        with transaction(w.engine) as s:  # the investigator exports
            w.actors["ivan"] = login(s, "ivan", PASSWORD, clock=_Fixed(w.at))
        yield w


class _Fixed:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def box(trial: World) -> Iterator[Box]:
    with window(trial) as b:
        yield b


# --- what the tests do ------------------------------------------------------------------------


def today(box: Box) -> date:
    return box.clock.now().date()


def headache(on: date, hours: float = 6.0, severity: str = "moderate",
             acute: bool = False) -> DiaryDay:
    return DiaryDay(on, True, severity, hours, acute)


def clear(on: date, acute: bool = False) -> DiaryDay:
    return DiaryDay(on, False, "none", 0.0, acute)


def record(box: Box, pid: str, day: DiaryDay, *, by: str = "cora",
           reason: str | None = None) -> Any:
    with box.tx() as s:
        return record_day(s, box.actor(by), pid, day, reason=reason, clock=box.clock)


def import_text(box: Box, content: str | bytes, *, by: str = "cora") -> Any:
    data = content.encode() if isinstance(content, str) else content
    with box.tx() as s:
        return import_diary(s, box.actor(by), data, source="diary.csv", clock=box.clock)


def versions(box: Box, pid: str, on: date | None = None) -> list[Any]:
    with box.tx() as s:
        return history(s, box.actor("cora"), pid, on=on)


def windows(box: Box, pid: str) -> dict[str, Any]:
    with box.tx() as s:
        return {w.window: w for w in outcomes(s, box.actor("cora"), pid,
                                              clock=box.clock).windows}


def state(box: Box) -> tuple[Any, ...]:
    """Everything a refused action must leave as it was."""
    with box.tx() as s:
        rows = s.exec(select(DiaryEntry.participant_id, DiaryEntry.day, DiaryEntry.version,
                             DiaryEntry.current, DiaryEntry.severity)
                      .order_by(col(DiaryEntry.id))).all()
        people = s.exec(select(Participant.id, Participant.infusion_date,
                               Participant.randomization_number)
                        .order_by(col(Participant.id))).all()
        events = s.exec(select(AuditEvent.seq).where(WORK).order_by(col(AuditEvent.seq))).all()
    return list(rows), list(people), list(events)


def refused(box: Box, error: type[TrialkitError], action: Any, *args: Any,
            **kwargs: Any) -> TrialkitError:
    return refused_changing_nothing(box, state, error, action, *args, **kwargs)


def verified(box: Box) -> verification.VerifyReport:
    return box.verify()


def enrolled(box: Box, site: str = "TWH") -> str:
    """A consented participant with an eligible baseline, randomized (clock moved on)."""
    pid = box.screen(site=site).id
    box.consent(pid)
    with box.tx() as s:
        baseline_in(s, box.actor("cora"), box.clock, pid)
    box.randomize(pid)
    return pid


def dispensed(box: Box, pid: str) -> None:
    with box.tx() as s:
        dispense(s, box.actor("phil"), pid, password=PASSWORD, clock=box.clock,
                 lots={p.id: "LOT-1" for p in PROTOCOL.dosing.preparations}, checked_by="pia",
                 checker_password=PASSWORD)


def infused(box: Box, *, days_later: int = 1) -> str:
    """An enrolled, dispensed participant infused ``days_later`` after randomization."""
    pid = enrolled(box)
    box.clock.advance(days=days_later)
    dispensed(box, pid)
    with box.tx() as s:
        infuse(s, box.actor("cora"), pid, on=today(box), clock=box.clock)
    return pid


def infuse_on(box: Box, pid: str, on: date, by: str = "cora") -> Any:
    with box.tx() as s:
        return infuse(s, box.actor(by), pid, on=on, clock=box.clock)


# --- recording and correcting a day -----------------------------------------------------------


def test_a_recorded_day_is_stored_and_audited(box: Box) -> None:
    pid = box.consented()
    box.clock.advance(days=3)
    r = record(box, pid, headache(today(box) - timedelta(days=1), hours=5, acute=True))
    assert (r.version, r.corrected, r.headache_day, r.window, r.study_day) == (
        1, False, True, None, None)
    [v] = versions(box, pid)
    assert (v.date, v.version, v.current, v.severity, v.duration_hours, v.acute_medication,
            v.recorded_by, v.reason) == (date(2026, 3, 4), 1, True, "moderate", 5.0, True,
                                         "cora", None)
    [event] = box.events("diary.record")
    assert (event.entity, event.entity_id, event.user_name) == ("diary", f"{pid}/2026-03-04",
                                                                "cora")
    after = json.loads(event.after_json or "{}")
    assert (after["severity"], after["version"], after["earlier"]) == ("moderate", 1, [])
    assert verified(box).ok


def test_a_correction_needs_a_reason_and_keeps_the_old_version(box: Box) -> None:
    pid = box.consented()
    box.clock.advance(days=2)
    on = today(box)
    record(box, pid, headache(on, hours=3))
    err = refused(box, InvalidInput, record, box, pid, headache(on, hours=5))
    assert err.message == (f"{pid} already has a diary day for {on} (version 1): a "
                           "correction needs a reason")
    assert err.needs == ("reason",)
    box.clock.advance(hours=2)
    r = record(box, pid, headache(on, hours=5), by="tess", reason="  typed 3 for 5 ")
    assert (r.version, r.corrected, r.headache_day) == (2, True, True)
    old, new = versions(box, pid, on)
    assert (old.version, old.current, old.duration_hours, old.recorded_by) == (
        1, False, 3.0, "cora")
    assert (new.version, new.current, new.duration_hours, new.recorded_by, new.reason) == (
        2, True, 5.0, "tess", "typed 3 for 5")
    assert new.recorded_at - old.recorded_at == timedelta(hours=2)
    [event] = box.events("diary.correct")
    before, after = json.loads(event.before_json or "{}"), json.loads(event.after_json or "{}")
    assert (before["duration_hours"], after["duration_hours"], event.reason) == (
        3.0, 5.0, "typed 3 for 5")
    assert [e["duration_hours"] for e in after["earlier"]] == [3.0]
    assert verified(box).ok


def test_entering_the_same_day_again_is_no_change(box: Box) -> None:
    pid = box.consented()
    record(box, pid, clear(today(box)))
    err = refused(box, Refused, record, box, pid, clear(today(box)), reason="again")
    assert "no change" in err.message and err.exit_code == 1


@pytest.mark.parametrize(("shift", "message"), [
    (1, "date 2026-03-03 is in the future (today is 2026-03-02)"),
    (-1, "date 2026-03-01 is before consent (2026-03-02): the diary starts at consent"),
])
def test_a_day_outside_the_allowed_dates_is_refused(box: Box, shift: int, message: str) -> None:
    pid = box.consented()
    err = refused(box, InvalidInput, record, box, pid,
                  clear(today(box) + timedelta(days=shift)))
    assert err.message == f"{pid}: {message}" and err.exit_code == 2


def test_bad_values_are_refused_with_every_problem(box: Box) -> None:
    pid = box.consented()
    err = refused(box, InvalidInput, record, box, pid,
                  DiaryDay(today(box), False, "severe", 30.0, False))
    assert err.message == ("2026-03-02: headache=no with severity 'severe': a day without "
                           "headache has severity none; duration 30 h is outside 0-24 h")


def test_who_may_record_a_diary_day(box: Box) -> None:
    shs = box.screen(site="SHS").id
    ineligible = box.screen(age=16).id
    day = clear(today(box))
    assert "tess works at TWH, not at SHS" in refused(
        box, PermissionDenied, record, box, shs, day, by="tess").message
    assert "phil (pharmacist) lacks the permission to record diary days" in refused(
        box, PermissionDenied, record, box, shs, day, by="phil").message
    assert refused(box, NotFound, record, box, "TWH-999", day).message == (
        "no participant 'TWH-999'")
    assert "not eligible" in refused(box, Refused, record, box, ineligible, day).message


def test_no_diary_after_withdrawal_but_earlier_days_can_still_be_entered(box: Box) -> None:
    pid = box.consented()
    box.clock.advance(days=5)
    with box.tx() as s:
        withdraw(s, box.actor("cora"), pid, reason="moved away", clock=box.clock)
    box.clock.advance(days=2)
    err = refused(box, Refused, record, box, pid, clear(today(box)))
    assert err.message == f"{pid} withdrew on 2026-03-07: no diary after that"
    assert record(box, pid, clear(date(2026, 3, 7))).version == 1


def test_a_locked_database_takes_no_diary_day_and_no_infusion(box: Box) -> None:
    pid = enrolled(box)
    box.conn.execute(text("UPDATE trial SET locked_at = :t, locked_by = 'ivan'"),
                     {"t": datetime(2026, 6, 1, tzinfo=UTC).replace(tzinfo=None)})
    for action in (lambda: record(box, pid, clear(today(box)), reason="late"),
                   lambda: import_text(box, HEADER + f"{pid},{today(box)},no,,,no\n"),
                   lambda: infuse_on(box, pid, today(box))):
        err = refused(box, Refused, action)
        # 00:00 UTC on 1 June is 20:00 the evening before in Toronto (EDT, UTC-4)
        assert "the database was locked on 2026-05-31 20:00 EDT by ivan" in err.message
    with box.tx() as s:  # (the lock is undone with the test's window)
        assert s.get(Trial, 1).locked_at is not None  # type: ignore[union-attr]


# --- importing a file -------------------------------------------------------------------------


def test_a_good_file_is_imported_whole_and_audited_as_one_batch(box: Box) -> None:
    one, two = box.consented(), box.consented(site="SHS")
    box.clock.advance(days=3)
    content = HEADER + "".join(
        f"{pid},2026-03-0{d},{'yes' if d % 2 else 'no'},{'mild' if d % 2 else ''},"
        f"{'2.5' if d % 2 else ''},{'yes' if d == 3 else 'no'}\n"
        for pid in (one, two.lower()) for d in (2, 3, 4))
    data = ("\ufeff" + content.replace("\n", "\r\n")).encode()  # BOM, CRLF: as Excel saves
    r = import_text(box, data)
    assert (r.rows, r.participants, r.sha256) == (6, 2, hashlib.sha256(data).hexdigest())
    days = versions(box, one)
    assert [(v.date.day, v.headache, v.severity, v.duration_hours, v.acute_medication,
             v.headache_day) for v in days] == [
        (2, False, "none", 0.0, False, False),
        (3, True, "mild", 2.5, True, True),  # short, but treated: a headache day
        (4, False, "none", 0.0, False, False)]
    assert {v.reason for v in days} == {f"diary.csv [batch {r.batch}]"}
    [event] = box.events("diary.import")
    assert (event.entity, event.entity_id, event.user_name) == ("diary", f"batch/{r.batch}",
                                                                "cora")
    assert event.reason == f"diary.csv [batch {r.batch}]; 6 days; sha256 {r.sha256}"
    after = json.loads(event.after_json or "{}")
    assert (after["recorded_by"], len(after["rows"])) == (["cora"], 6)
    assert after["rows"][3] == [one, "2026-03-02", False, "none", 0.0, False]  # sorted
    assert verified(box).ok


def test_an_imported_day_corrected_later_keeps_both_audits(box: Box) -> None:
    pid = box.consented()
    box.clock.advance(days=1)
    r = import_text(box, HEADER + f"{pid},2026-03-02,no,,,no\n")
    record(box, pid, headache(date(2026, 3, 2)), reason="phoned in")
    old, new = versions(box, pid)
    assert (old.reason, old.current, new.reason) == (f"diary.csv [batch {r.batch}]", False,
                                                     "phoned in")
    [event] = box.events("diary.correct")
    assert json.loads(event.before_json or "{}")["reason"] == f"diary.csv [batch {r.batch}]"
    assert verified(box).ok
    err = refused(box, InvalidInput, record, box, pid, clear(date(2026, 3, 2)),
                  reason=f"sneaky [batch {r.batch}]")
    assert "that marks imported days" in err.message


BAD_FILE = [
    ("unknown participant", "TWH-099,2026-03-03,no,,,no",
     ["line 2: unknown participant 'TWH-099'"]),
    ("date in the future", "{pid},2026-03-06,no,,,no",
     ["line 2: date 2026-03-06 is in the future (today is 2026-03-05)"]),
    ("date before consent", "{pid},2026-03-01,no,,,no",
     ["line 2: date 2026-03-01 is before consent (2026-03-02): the diary starts at consent"]),
    ("not a date", "{pid},03/03/2026,no,,,no",
     ["line 2: date '03/03/2026' is not a date like 2026-03-01"]),
    ("duration over 24 h", "{pid},2026-03-03,yes,mild,25,no",
     ["line 2: duration 25 h is outside 0-24 h"]),
    ("negative duration", "{pid},2026-03-03,yes,mild,-2,no",
     ["line 2: duration -2 h is outside 0-24 h"]),
    ("severity not in the list", "{pid},2026-03-03,yes,awful,5,no",
     ["line 2: severity 'awful' is not one of none, mild, moderate, severe"]),
    ("headache=no with a severity", "{pid},2026-03-03,no,severe,,no",
     ["line 2: headache=no with severity 'severe': a day without headache has severity none"]),
    ("a short row", "{pid},2026-03-03,no,,no", ["line 2: 5 values for 6 columns"]),
    ("a participant of another site", "SHS-001,2026-03-03,no,,,no",
     ["line 2: SHS-001 is a participant of SHS; tess records for TWH"]),
]


@pytest.mark.parametrize(("row", "expected"), [(r, e) for _n, r, e in BAD_FILE],
                         ids=[n for n, _r, _e in BAD_FILE])
def test_a_bad_row_rejects_the_whole_file(box: Box, row: str, expected: list[str]) -> None:
    pid = box.consented()
    box.screen(site="SHS")
    box.clock.advance(days=3)
    good = f"{pid},2026-03-02,no,,,no\n"
    err = refused(box, ImportRejected, import_text, box,
                  HEADER.replace("\n", "\n" + good) + row.format(pid=pid) + "\n", by="tess")
    expected = [p.replace("line 2", "line 3") for p in expected]
    assert isinstance(err, ImportRejected) and err.problems == expected
    assert err.exit_code == 2
    assert err.message.startswith("diary.csv: 1 problem, nothing was imported:\n  line 3: ")


def test_every_problem_of_a_file_is_reported_with_its_line(box: Box) -> None:
    pid = box.consented()
    box.clock.advance(days=3)
    record(box, pid, clear(date(2026, 3, 2)))
    content = HEADER + "\n".join([
        f"{pid},2026-03-02,no,,,no",  # line 2: already recorded
        f"{pid},2026-03-03,yes,moderate,5,no",  # line 3: fine
        "",  # line 4: blank lines are skipped
        f"{pid},2026-03-03,no,,,no",  # line 5: the same date again
        f"{pid},2026-03-04,yes,,x,maybe",  # line 6: three problems
    ]) + "\n"
    err = refused(box, ImportRejected, import_text, box, content)
    assert isinstance(err, ImportRejected)
    assert err.problems == [
        f"line 2: {pid} already has a diary day for 2026-03-02: correct that day on its "
        "own, with a reason (a file adds new days only)",
        f"line 5: {pid} 2026-03-03 is also on line 3 (a date appears once)",
        "line 6: severity is required when headache=yes",
        "line 6: duration_hours 'x' is not a number of hours",
        "line 6: acute_medication 'maybe' is not yes or no",
    ]


@pytest.mark.parametrize(("content", "problem"), [
    ("participant_id,date,headache,severity,acute_medication\nTWH-001,2026-03-02,no,,no\n",
     "line 1: missing column duration_hours (the columns are participant_id, date, headache, "
     "severity, duration_hours, acute_medication)"),
    (HEADER.replace("\n", ",Date\n"), "line 1: column 'date' appears twice"),
    ("", "line 1: the file is empty (it needs a header line: participant_id,date,headache,"
         "severity,duration_hours,acute_medication)"),
    (HEADER, "the file has a header but no diary rows"),
    ((HEADER + "TWH-001,2026-03-02,no,,,no\n").encode("utf-16"),
     "line 1: not UTF-8 text (byte 0xff at column 1); save the file as UTF-8 CSV"),
    (HEADER.encode() + "TWH-001,2026-03-02,no,,,no\nTWH-001,2026-03-03,no,,,nö\n".encode(
        "latin-1"), "line 3: not UTF-8 text (byte 0xf6 at column 26); save the file as UTF-8 CSV"),
])
def test_a_file_of_the_wrong_shape_is_rejected(box: Box, content: str | bytes,
                                               problem: str) -> None:
    box.screen()
    err = refused(box, ImportRejected, import_text, box, content)
    assert isinstance(err, ImportRejected) and err.problems == [problem]


def test_extra_columns_of_an_exported_diary_are_ignored(box: Box) -> None:
    pid = box.consented()
    content = ("participant_id,date,study_day,window,headache,severity,duration_hours,"
               f"acute_medication,headache_day\n{pid},2026-03-02,,,yes,severe,8,no,yes\n")
    assert import_text(box, content).rows == 1
    assert versions(box, pid)[0].severity == "severe"


# --- the baseline gate ------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "aching", "passes", "message"), [
    (24, 15, True, None),
    (23, 23, False, "23 of 28 days recorded (at least 24 needed)"),
    (28, 14, False, "14 headache days (at least 15 needed)"),
    (10, 2, False, "10 of 28 days recorded (at least 24 needed) and 2 headache days "
                   "(at least 15 needed)"),
])
def test_randomization_needs_the_protocols_baseline_diary(
    box: Box, days: int, aching: int, passes: bool, message: str | None
) -> None:
    pid = box.screen().id
    box.consent(pid)
    with box.tx() as s:
        baseline_in(s, box.actor("cora"), box.clock, pid, days=days, headache_days=aching)
    if passes:
        assert box.randomize(pid).randomization_number == "R0001"
        return
    err = refused(box, Refused, box.randomize, pid)
    assert err.message == (f"{pid} cannot be randomized yet: the baseline diary (2026-03-02 "
                           f"to 2026-03-29) has {message}")
    assert box.count(DiaryEntry) == days


def test_only_the_28_days_before_randomization_count(box: Box) -> None:
    pid = box.screen().id
    box.consent(pid)
    with box.tx() as s:
        baseline_in(s, box.actor("cora"), box.clock, pid)
    box.clock.advance(days=6)  # six days later, six baseline days fall out of the window
    err = refused(box, Refused, box.randomize, pid)
    assert err.message == (f"{pid} cannot be randomized yet: the baseline diary (2026-03-08 "
                           "to 2026-04-04) has 22 of 28 days recorded (at least 24 needed) "
                           "and 14 headache days (at least 15 needed)")


# --- the infusion -----------------------------------------------------------------------------


def test_the_infusion_is_recorded_once_for_a_dispensed_participant(box: Box) -> None:
    pid = enrolled(box)
    randomized = today(box)
    assert "has no dispensed infusion yet" in refused(
        box, Refused, infuse_on, box, pid, randomized).message
    box.clock.advance(days=1)
    dispensed(box, pid)
    assert refused(box, InvalidInput, infuse_on, box, pid,
                   randomized - timedelta(days=1)).message.startswith(
        f"infusion date {randomized - timedelta(days=1)} is before randomization")
    assert "is in the future" in refused(
        box, InvalidInput, infuse_on, box, pid, today(box) + timedelta(days=1)).message
    assert infuse_on(box, pid, today(box)) == today(box)
    assert refused(box, Refused, infuse_on, box, pid, today(box)).message == (
        f"{pid} was already infused on {today(box)}")
    with box.tx() as s:
        [v] = [v for v in list_participants(s, box.actor("cora")) if v.id == pid]
    assert v.status == "infused"
    [event] = box.events("participant.infuse")
    assert json.loads(event.after_json or "{}")["infusion_date"] == today(box).isoformat()
    assert verified(box).ok


def test_the_infusion_needs_a_randomized_participant(box: Box) -> None:
    pid = box.screen().id
    box.consent(pid)
    assert refused(box, Refused, infuse_on, box, pid, today(box)).message == (
        f"{pid} has not been randomized yet")
    assert "lacks the permission" in refused(
        box, PermissionDenied, infuse_on, box, pid, today(box), by="phil").message


def test_after_the_infusion_days_fall_in_windows_up_to_the_protocols_last_day(box: Box) -> None:
    pid = infused(box)
    day0 = today(box)
    box.clock.advance(days=100)
    first = record(box, pid, headache(day0 + timedelta(days=1)))
    assert (first.window, first.study_day) == ("D1-28", 1)
    assert record(box, pid, clear(day0 + timedelta(days=84))).window == "D57-84"
    assert record(box, pid, clear(day0)).window is None  # day 0 is in no window
    err = refused(box, InvalidInput, record, box, pid, clear(day0 + timedelta(days=85)))
    assert "is more than 84 days after the infusion" in err.message


# --- derived outcomes -------------------------------------------------------------------------


def test_outcomes_are_derived_per_window_as_the_protocol_says(box: Box) -> None:
    pid = infused(box)  # baseline: 28 days, 20 headache days -> 20.0 per 28
    day0 = today(box)
    box.clock.advance(days=30)
    rows = [f"{pid},{day0 + timedelta(days=i)},yes,{'severe' if i % 3 == 0 else 'mild'},"
            f"{5 if i <= 7 else 1},{'yes' if i in (8, 9) else 'no'}" for i in range(1, 11)]
    rows += [f"{pid},{day0 + timedelta(days=i)},no,,,{'yes' if i == 11 else 'no'}"
             for i in range(11, 23)]
    import_text(box, HEADER + "\n".join(rows) + "\n")
    got = windows(box, pid)
    base, primary, later = got["BASELINE"], got["D1-28"], got["D29-56"]
    assert (base.days_recorded, base.headache_days, base.headache_days_28) == (28, 20, 20.0)
    # 22 of 28 days: headache days 1-7 (5 h) and 8-9 (1 h, treated); 10 is 1 h untreated
    assert (primary.days_expected, primary.days_recorded) == (28, 22)
    assert (primary.headache_days, primary.moderate_severe_days,
            primary.acute_medication_days) == (9, 3, 3)
    assert primary.headache_days_28 == 11.5  # 9 x 28 / 22 = 11.4545... -> 11.5
    assert (primary.baseline_headache_days_28, primary.change_from_baseline) == (20.0, -8.5)
    assert (later.days_expected, later.days_recorded, later.headache_days) == (1, 0, None)
    assert later.headache_days_28 is None and later.change_from_baseline is None


def test_before_randomization_the_baseline_is_the_28_days_from_consent(box: Box) -> None:
    pid = box.consented()  # on 2 March
    box.clock.advance(days=5)
    for i in range(5):
        record(box, pid, headache(date(2026, 3, 2) + timedelta(days=i)))
    with box.tx() as s:
        o = outcomes(s, box.actor("cora"), pid, clock=box.clock)
    assert (o.provisional, o.randomized_on, o.status) == (True, None, "consented")
    base = o.windows[0]
    # 2 to 29 March: the first 28 days from consent; 2-6 March are over (today is 7 March)
    assert (base.start, base.end, base.days_expected, base.days_recorded,
            base.headache_days) == (date(2026, 3, 2), date(2026, 3, 29), 5, 5, 5)
    assert base.headache_days_28 is None  # 5 days are too few to prorate
    box.clock.advance(days=40)  # 16 April: the window randomizing today would use
    with box.tx() as s:
        base = outcomes(s, box.actor("cora"), pid, clock=box.clock).windows[0]
    assert (base.start, base.end, base.days_expected, base.days_recorded) == (
        date(2026, 3, 19), date(2026, 4, 15), 28, 0)


# --- the diary starts at consent (issue 9, item 9) ------------------------------------------


def test_no_diary_day_before_consent_by_any_path(box: Box) -> None:
    pid = box.screen().id  # eligible, not consented
    said = f"{pid} has not consented: the diary starts at consent"
    err = refused(box, Refused, record, box, pid, clear(today(box)))
    assert (err.message, err.exit_code) == (said, 1)
    err = refused(box, ImportRejected, import_text, box, HEADER + f"{pid},{today(box)},no,,,no\n")
    assert isinstance(err, ImportRejected) and err.problems == [f"line 2: {said}"]
    with box.tx() as s:
        with pytest.raises(Refused, match=said):
            record_days(s, box.actor("cora"), pid, [clear(today(box))], clock=box.clock)
    box.consent(pid)
    assert record(box, pid, clear(today(box))).version == 1  # from consent on, it can


def slipped_in(box: Box, pid: str, day: str) -> None:
    """A diary day as an older version let it in before consent (written behind
    trialkit's back: no version today can)."""
    box.conn.execute(text(
        "INSERT INTO diary_entry (participant_id, day, version, headache, severity, "
        "duration_hours, acute_medication, recorded_by, recorded_at, current) VALUES "
        "(:pid, :day, 1, false, 'none', 0, false, 'cora', :at, true)"),
        {"pid": pid, "day": day, "at": datetime(2026, 3, 3, 9, tzinfo=UTC).replace(tzinfo=None)})


def test_who_withdrew_before_consenting_has_no_diary_and_none_is_exported(
    box: Box, tmp_path: Path
) -> None:
    pid = box.screen().id
    box.clock.advance(days=2)
    with box.tx() as s:
        withdraw(s, box.actor("cora"), pid, reason="changed her mind", clock=box.clock)
    said = f"{pid} has not consented: the diary starts at consent"
    assert refused(box, Refused, record, box, pid, clear(date(2026, 3, 3))).message == said
    # A day an older version let in before consent is not exported
    slipped_in(box, pid, "2026-03-03")
    consented = box.consented()  # on 4 March, with a day before consent let in the same way
    slipped_in(box, consented, "2026-03-03")
    record(box, consented, clear(today(box)))
    files = ExportFiles(tmp_path / "diary.csv")
    with files:
        with box.tx() as s:
            export_table(s, box.actor("ivan"), "diary", files, clock=box.clock)
        files.publish()
    with (tmp_path / "diary.csv").open(newline="", encoding="utf-8") as f:
        rows = [(r["participant_id"], r["date"]) for r in csv.DictReader(f)]
    assert rows == [(consented, today(box).isoformat())]


def test_a_participant_consented_today_starts_the_diary_today(box: Box) -> None:
    pid = box.consented()  # screened and consented on 2 March
    assert record(box, pid, headache(today(box))).version == 1
    with box.tx() as s:
        base = outcomes(s, box.actor("cora"), pid, clock=box.clock).windows[0]
    # Nothing is due yet (today is not over); today's day is in the window already
    assert (base.start, base.days_expected, base.days_recorded) == (date(2026, 3, 2), 0, 1)
    box.clock.advance(days=3)
    with box.tx() as s:
        base = outcomes(s, box.actor("cora"), pid, clock=box.clock).windows[0]
    assert (base.days_expected, base.days_recorded) == (3, 1)  # 2, 3 and 4 March are over


def test_the_baseline_gate_counts_from_consent(box: Box) -> None:
    pid = box.screen().id  # screened on 2 March
    box.clock.advance(days=8)
    box.consent(pid)  # consented on 10 March: the diary starts there
    box.clock.advance(days=20)  # 30 March: 20 days (10-29 March) can be recorded
    with box.tx() as s:
        record_days(s, box.actor("cora"), pid,
                    [headache(date(2026, 3, 10) + timedelta(days=i)) for i in range(20)],
                    clock=box.clock)
    err = refused(box, Refused, box.randomize, pid)
    # 24 of the 28 days before randomization, from 10 March on: 3 April at the earliest
    assert err.message == (
        f"{pid} cannot be randomized yet: the baseline diary (2026-03-02 to 2026-03-29) has "
        "20 of 28 days recorded (at least 24 needed; the diary starts at consent "
        "(2026-03-10), so 2026-04-03 is the earliest day to randomize)")
    with box.tx() as s:
        base = outcomes(s, box.actor("cora"), pid, clock=box.clock).windows[0]
    assert (base.start, base.days_expected, base.days_recorded) == (date(2026, 3, 10), 20, 20)
    box.clock.advance(days=4)  # 3 April
    with box.tx() as s:
        record_days(s, box.actor("cora"), pid,
                    [headache(date(2026, 3, 30) + timedelta(days=i)) for i in range(4)],
                    clock=box.clock)
    assert box.randomize(pid).randomization_number == "R0001"
    assert windows(box, pid)["BASELINE"].days_expected == 24  # 10 March to 2 April


# --- tampering --------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    "UPDATE diary_entry SET severity = 'mild' WHERE version = 2",
    "UPDATE diary_entry SET duration_hours = 1 WHERE version = 1",
    "DELETE FROM diary_entry WHERE version = 1",
])
def test_a_diary_row_changed_behind_trialkits_back_fails_verification(
    box: Box, change: str
) -> None:
    pid = box.consented()
    record(box, pid, headache(today(box), hours=3))
    record(box, pid, headache(today(box), hours=6, severity="severe"), reason="misread")
    assert verified(box).ok
    box.conn.execute(text(change))
    report = verified(box)
    assert not report.ok
    assert f"diary '{pid}/2026-03-02'" in (report.problem or "")


def test_a_baseline_recorded_in_bulk_is_the_same_as_day_by_day(box: Box) -> None:
    pid = box.consented()
    box.clock.advance(days=28)
    with box.tx() as s:
        baseline_in(s, box.actor("cora"), box.clock, pid)
    days = versions(box, pid)
    assert [(v.date, v.headache) for v in days] == [
        (d.day, d.headache) for d in baseline_days(date(2026, 3, 2))]
    assert verified(box).ok


@pytest.mark.parametrize("change", [
    "UPDATE diary_entry SET severity = 'severe' WHERE day = '2026-03-03'",
    "DELETE FROM diary_entry WHERE day = '2026-03-04'",
    "UPDATE diary_entry SET recorded_by = 'tess' WHERE day = '2026-03-02'",
    "UPDATE diary_entry SET reason = 'typed in' WHERE day = '2026-03-02'",
])
def test_an_imported_row_changed_behind_trialkits_back_fails_verification(
    box: Box, change: str
) -> None:
    pid = box.consented()
    box.clock.advance(days=3)
    r = import_text(box, HEADER + "".join(
        f"{pid},2026-03-0{d},yes,mild,5,no\n" for d in (2, 3, 4)))
    assert verified(box).ok
    box.conn.execute(text(change))
    report = verified(box)
    assert not report.ok
    assert f"diary 'batch/{r.batch}'" in (report.problem or "")


_COPY_ROW = text(
    "INSERT INTO diary_entry (participant_id, day, version, headache, severity, "
    "duration_hours, acute_medication, recorded_by, recorded_at, reason, current) "
    "SELECT :to_pid, :to_day, version, headache, severity, duration_hours, acute_medication, "
    "recorded_by, recorded_at, reason, current FROM diary_entry "
    "WHERE participant_id = :pid AND day = :day").bindparams(
        bindparam("to_day", type_=Date), bindparam("day", type_=Date))


def _event_of(box: Box, entity_id: str) -> int:
    return int(box.conn.execute(text("SELECT max(seq) FROM audit_event WHERE entity_id = :e"),
                                {"e": entity_id}).scalar_one())


@pytest.mark.parametrize(("to", "to_day"), [
    ("same", date(2026, 3, 1)),  # read before the file's rows
    ("same", date(2026, 3, 5)),  # read after its last row: the batch was already complete
    ("other", date(2026, 3, 2)),  # another participant's day, read after the batch was complete
])
def test_a_row_added_to_an_imported_file_is_caught_at_its_batch(
    box: Box, to: str, to_day: date
) -> None:
    """verify closes a batch once it holds as many rows as its event recorded: a row added
    with the file's mark, wherever it sorts, is still caught at that file's event."""
    pid = box.consented()
    other = box.consented(site="SHS")
    box.clock.advance(days=3)
    r = import_text(box, HEADER + "".join(
        f"{pid},2026-03-0{d},yes,mild,5,no\n" for d in (2, 3, 4)))
    assert verified(box).ok
    box.conn.execute(_COPY_ROW, {"to_pid": pid if to == "same" else other, "to_day": to_day,
                                 "pid": pid, "day": date(2026, 3, 3)})
    report = verified(box)
    assert not report.ok
    assert f"diary 'batch/{r.batch}'" in (report.problem or "")
    assert report.bad_seq == _event_of(box, f"batch/{r.batch}")


def test_a_row_moved_between_two_imported_files_is_caught_at_the_first(box: Box) -> None:
    pid = box.consented()
    box.clock.advance(days=5)
    first = import_text(box, HEADER + "".join(
        f"{pid},2026-03-0{d},yes,mild,5,no\n" for d in (2, 3)))
    second = import_text(box, HEADER + "".join(
        f"{pid},2026-03-0{d},no,none,0,no\n" for d in (4, 5)))
    assert verified(box).ok
    box.conn.execute(text(
        "UPDATE diary_entry SET reason = (SELECT reason FROM diary_entry WHERE day = "
        "'2026-03-05') WHERE day = '2026-03-02'"))
    report = verified(box)
    assert not report.ok
    assert report.bad_seq == _event_of(box, f"batch/{first.batch}")
    assert report.bad_seq < _event_of(box, f"batch/{second.batch}")


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sites=st.lists(st.sampled_from(["TWH", "SHS"]), min_size=2, max_size=4),
       order=st.randoms(use_true_random=False), pick=st.integers(0, 10_000),
       corrected=st.booleans())
def test_any_row_of_a_file_across_participants_changed_later_is_caught_at_its_batch(
    trial: World, sites: list[str], order: Any, pick: int, corrected: bool
) -> None:
    """One file holds several participants' days at both sites, in any order; ``audit
    verify`` holds until any one stored row of it is changed, then names that file's
    batch (its event is the first that recorded the row), corrected later or not."""
    with window(trial) as box:
        pids = [box.consented(site=site) for site in sites]
        box.clock.advance(days=3)
        lines = [f"{pid},2026-03-0{d},yes,mild,{d + i},no\n"
                 for i, pid in enumerate(pids) for d in (2, 3, 4)]
        order.shuffle(lines)
        r = import_text(box, HEADER + "".join(lines))
        if corrected:
            record(box, pids[0], headache(date(2026, 3, 3), hours=9), reason="misread")
        assert verified(box).ok
        pid, day = lines[pick % len(lines)].split(",")[:2]
        box.conn.execute(text("UPDATE diary_entry SET duration_hours = 23.5 WHERE "
                              "participant_id = :p AND day = :d AND version = 1"),
                         {"p": pid, "d": day})
        report = verified(box)
        assert not report.ok
        assert f"diary 'batch/{r.batch}'" in (report.problem or "")


def test_imported_and_single_days_are_stored_alike(box: Box) -> None:
    """The bulk path writes through the driver: what it stores must read back exactly as
    what the ORM stores (types, time format)."""
    pid = box.consented()
    box.clock.advance(days=2)  # a whole second: sqlite3 alone would drop the ".000000"
    record(box, pid, headache(date(2026, 3, 2), hours=5.5, acute=True))
    import_text(box, HEADER + f"{pid},2026-03-03,yes,moderate,5.5,yes\n")
    rows = box.conn.execute(text(
        "SELECT day, headache, severity, duration_hours, acute_medication, recorded_at, "
        "current FROM diary_entry ORDER BY day")).all()
    single, imported = (tuple(r) for r in rows)
    assert single[1:] == imported[1:]
    days = versions(box, pid)
    assert days[0].recorded_at == days[1].recorded_at == box.clock.now()


# --- one status in every view (issue 9, item 13: partly) ------------------------------------


def test_outcomes_and_participants_say_the_same_status_at_every_stage(box: Box) -> None:
    def both(pid: str) -> tuple[str, str]:
        with box.tx() as s:
            [listed] = [v for v in list_participants(s, box.actor("cora")) if v.id == pid]
            shown = outcomes(s, box.actor("cora"), pid, clock=box.clock)
        return listed.status, shown.status

    pid = enrolled(box)
    assert both(pid) == ("randomized", "randomized")
    dispensed(box, pid)
    assert both(pid) == ("dispensed", "dispensed")  # outcomes said "randomized" here
    infuse_on(box, pid, today(box))
    assert both(pid) == ("infused", "infused")
    with box.tx() as s:
        withdraw(s, box.actor("cora"), pid, reason="moved away", clock=box.clock)
    assert both(pid) == ("withdrawn", "withdrawn")
