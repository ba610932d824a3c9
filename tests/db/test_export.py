"""Database lock and the analysis exports through their services, on SQLite and (with
TRIALKIT_TEST_PG_URL) on PostgreSQL.

The trial is the pharmacy tests' world (``test_pharmacy.build_world``: lists sealed so the
arms are known, six participants randomized, one withdrawn) carried on by
``build_export_world``: a screen failure, four participants prepared and infused, five
weeks of follow-up diary, one emergency unblinding. Built once per backend; each test works
in a ``Box`` whose changes are rolled back at its end."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update
from sqlmodel import col, select

from tests.builders import PROTOCOL, eligible_answers
from tests.conftest import BACKENDS, PASSWORD, SteppingClock
from tests.db.test_pharmacy import (
    ARMS,
    LOTS,
    NOT_RANDOMIZED,
    WEIGHTS,
    WITHDRAWN,
    Box,
    World,
    arm_words,
    build_world,
    window,
)
from trialkit.domain.diary import DiaryDay
from trialkit.domain.errors import (
    AuthenticationFailed,
    InvalidInput,
    PermissionDenied,
    Refused,
)
from trialkit.domain.protocol import PARTICIPANT_FIELDS
from trialkit.services.administration.database_lock import LockResult, lock_database
from trialkit.services.diary.entries import infuse, record_day
from trialkit.services.diary.file_import import import_diary
from trialkit.services.enrolment.participants import consent, randomize, screen, withdraw
from trialkit.services.exports.datasets import (
    DIARY_COLUMNS,
    OUTCOME_COLUMNS,
    ExportFiles,
    ExportRefused,
    ExportResult,
    escape_text,
    export_table,
)
from trialkit.services.integrity import verification
from trialkit.services.pharmacy.dispensing import dispense, print_labels
from trialkit.services.pharmacy.unblinding import unblind
from trialkit.store.db import transaction
from trialkit.store.models import AuditEvent, DiaryEntry, Participant, Preparation, Trial

INFUSED = ("TWH-001", "TWH-002", "TWH-003", "SHS-001")
RANDOMIZED = ("SHS-001", "TWH-001", "TWH-002", "TWH-003", "TWH-004", "TWH-005")
FOLLOW_UP_DAYS = 37  # "today" is day 37 after the infusion: D1-28 is over, D29-56 runs
UNBLINDED = "TWH-003"
INELIGIBLE = "TWH-007"
DIARY_HEADER = "participant_id,date,headache,severity,duration_hours,acute_medication\n"


def follow_up_file(day0: date) -> str:
    """TWH-001: all of D1-28 (headache on days 1-14) and days 29-36; TWH-002: days 1-20
    (too few to prorate); TWH-003: days 1-22 (headache on 11) and 29-33; SHS-001: none."""
    plan = {"TWH-001": (range(1, 29), 14), "TWH-002": (range(1, 21), 10),
            "TWH-003": (range(1, 23), 11)}
    extra = {"TWH-001": range(29, 37), "TWH-003": range(29, 34)}
    lines = []
    for pid, (days, aching) in plan.items():
        for k in days:
            on = day0 + timedelta(days=k)
            lines.append(f"{pid},{on},yes,moderate,6,no" if k <= aching
                         else f"{pid},{on},no,,,no")
        lines += [f"{pid},{day0 + timedelta(days=k)},no,,,no" for k in extra.get(pid, ())]
    return DIARY_HEADER + "\n".join(lines) + "\n"


@contextmanager
def build_export_world(backend: str, folder: Path, *, training: bool = False
                       ) -> Iterator[World]:
    """The pharmacy world carried on to five weeks after four infusions (see the module
    docstring); its clock stops at day ``FOLLOW_UP_DAYS``."""
    with build_world(backend, folder, training=training) as w:
        clock = SteppingClock(w.at)
        cora, phil, ivan = w.actors["cora"], w.actors["phil"], w.actors["ivan"]
        answers = eligible_answers() | {"E01_pregnancy": "yes"}
        with transaction(w.engine) as s:
            failed = screen(s, cora, site="TWH", age=16, sex="F", weight_kg=60.0,
                            factors={"headache_type": "CM"}, answers=answers, clock=clock)
        assert failed.id == INELIGIBLE and not failed.eligible
        day0 = clock.now().date()
        for pid in INFUSED:
            with transaction(w.engine) as s:
                dispense(s, phil, pid, password=PASSWORD, clock=clock, lots=LOTS[ARMS[pid]],
                         checked_by="pia", checker_password=PASSWORD)
            with transaction(w.engine) as s:
                infuse(s, cora, pid, on=day0, clock=clock)
        clock.advance(days=FOLLOW_UP_DAYS)
        with transaction(w.engine) as s:
            import_diary(s, cora, follow_up_file(day0).encode(), source="follow-up.csv",
                         clock=clock)
        with transaction(w.engine) as s:
            unblind(s, ivan, UNBLINDED, reason="suspected serious adverse reaction",
                    password=PASSWORD, clock=clock)
        clock.advance(minutes=5)
        yield dataclasses.replace(w, at=clock.now())


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    with build_export_world(request.param, tmp_path_factory.mktemp("export")) as w:
        yield w


@pytest.fixture
def box(world: World) -> Iterator[Box]:
    with window(world) as b:
        yield b


# --- helpers ---------------------------------------------------------------------------------


def export(box: Box, kind: str, out: Path, *, by: str = "ivan", unblinded: bool = False,
           password: str | None = PASSWORD, **kw: Any) -> ExportResult:
    files = ExportFiles(out)
    with files:
        with box.tx() as s:
            result = export_table(s, box.actor(by), kind, files, clock=box.clock,
                                  unblinded=unblinded, password=password, **kw)
        files.publish()
    return result


def lock(box: Box, by: str = "iris") -> LockResult:
    with box.tx() as s:
        return lock_database(s, box.actor(by), clock=box.clock)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def as_dicts(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def row(rows: list[dict[str, str]], pid: str, window_code: str) -> dict[str, str]:
    [found] = [r for r in rows if r["participant_id"] == pid and r["window"] == window_code]
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trial_row(box: Box) -> Trial:
    with box.tx() as s:
        trial = s.get(Trial, 1)
        assert trial is not None
        return trial


# --- outcomes.csv ----------------------------------------------------------------------------


def test_the_blinded_outcomes_have_exactly_the_specified_columns_and_no_arm(
    box: Box, tmp_path: Path
) -> None:
    result = export(box, "outcomes", tmp_path / "outcomes.csv")
    rows = read_csv(tmp_path / "outcomes.csv")
    assert tuple(rows[0]) == OUTCOME_COLUMNS
    windows = [w.code for w in PROTOCOL.diary.windows]
    assert [(r[0], r[8]) for r in rows[1:]] == [(pid, w) for pid in RANDOMIZED for w in windows]
    assert (result.rows, result.participants, result.blinded) == (24, 6, True)
    shown = (tmp_path / "outcomes.csv").read_text()
    assert not arm_words(shown)
    for lot in ("K2403", "S2311"):
        assert lot not in shown


def test_outcomes_are_those_the_protocol_defines(box: Box, tmp_path: Path) -> None:
    export(box, "outcomes", tmp_path / "o.csv")
    rows = as_dicts(tmp_path / "o.csv")
    day0 = date.fromisoformat(row(rows, "TWH-001", "D1-28")["infusion_on"])
    assert row(rows, "TWH-001", "D1-28") == {
        "participant_id": "TWH-001", "site": "TWH", "stratum": "TWH-CM",
        "randomization_number": "R0001", "randomized_on": day0.isoformat(),
        "infusion_on": day0.isoformat(), "status": "infused", "unblinded_emergency": "no",
        "window": "D1-28", "window_start": str(day0 + timedelta(days=1)),
        "window_end": str(day0 + timedelta(days=28)), "days_expected": "28",
        "days_recorded": "28", "headache_days": "14", "moderate_severe_days": "14",
        "acute_medication_days": "0", "headache_days_28": "14.0",
        "baseline_headache_days_28": "20.0", "change_from_baseline": "-6.0",
    }
    assert row(rows, "TWH-003", "D1-28")["headache_days_28"] == "14.0"
    assert row(rows, "TWH-003", "D1-28")["unblinded_emergency"] == "yes"
    # D29-56 is running: days over so far are expected, no more
    assert row(rows, "TWH-001", "D29-56")["days_expected"] == str(FOLLOW_UP_DAYS - 29)


def test_missing_is_an_empty_cell_never_zero(box: Box, tmp_path: Path) -> None:
    export(box, "outcomes", tmp_path / "o.csv")
    rows = as_dicts(tmp_path / "o.csv")
    too_few = row(rows, "TWH-002", "D1-28")  # 20 of 28 days: not prorated
    assert (too_few["days_recorded"], too_few["headache_days"]) == ("20", "10")
    assert (too_few["headache_days_28"], too_few["change_from_baseline"]) == ("", "")
    nothing = row(rows, "SHS-001", "D1-28")
    assert [nothing[c] for c in ("headache_days", "moderate_severe_days",
                                 "acute_medication_days", "headache_days_28")] == [""] * 4
    not_infused = row(rows, "TWH-004", "D1-28")
    assert [not_infused[c] for c in ("infusion_on", "window_start", "window_end")] == [""] * 3
    assert not_infused["days_expected"] == "0"
    assert row(rows, "TWH-001", "BASELINE")["change_from_baseline"] == ""


def test_the_status_column_is_blinded_and_marks_withdrawal(box: Box, tmp_path: Path) -> None:
    export(box, "outcomes", tmp_path / "o.csv")
    status = {r["participant_id"]: r["status"] for r in as_dicts(tmp_path / "o.csv")}
    assert status == {"SHS-001": "infused", "TWH-001": "infused", "TWH-002": "infused",
                      "TWH-003": "infused", "TWH-004": "randomized", "TWH-005": "withdrawn"}


def test_reading_in_small_batches_writes_the_same_file_and_reports_progress(
    box: Box, tmp_path: Path
) -> None:
    whole = export(box, "outcomes", tmp_path / "whole.csv")
    seen: list[tuple[int, int]] = []
    small = export(box, "outcomes", tmp_path / "small.csv", batch=4,
                   progress=lambda done, total: seen.append((done, total)))
    assert (tmp_path / "whole.csv").read_bytes() == (tmp_path / "small.csv").read_bytes()
    assert whole.files[0].sha256 == small.files[0].sha256
    assert seen == [(4, 6), (6, 6)]


# --- the dictionary and the manifest ---------------------------------------------------------


def test_the_dictionary_describes_every_column_from_the_protocol(box: Box, tmp_path: Path
                                                                  ) -> None:
    export(box, "outcomes", tmp_path / "outcomes.csv")
    rows = read_csv(tmp_path / "outcomes.dictionary.csv")
    assert rows[0] == ["column", "type", "unit", "derivation", "allowed_values"]
    described = {r[0]: r for r in rows[1:]}
    assert list(described) == list(OUTCOME_COLUMNS)
    assert described["window"][4] == "BASELINE, D1-28, D29-56, D57-84"
    assert "at least 4 h, or any headache treated with acute medication" in (
        described["headache_days"][3])
    assert "at least 21 days" in described["headache_days_28"][3]
    assert described["headache_days_28"][1:3] == ["decimal", "days per 28 days"]
    # The baseline is prorated headache days (as the code derives it), never moderate/severe
    baseline = described["baseline_headache_days_28"][3]
    assert "its headache days (a headache lasting at least 4 h, or any headache treated " \
           "with acute medication, whatever the severity) x 28 / its days_recorded" in baseline
    assert "at least 21 of its days" in baseline and "moderate" not in baseline
    assert "never moderate_severe_days" in described["change_from_baseline"][3]
    assert described["randomized_on"][1] == "date"
    assert all(r[1] in {"text", "integer", "decimal", "date", "datetime"} for r in rows[1:])


def test_the_manifest_has_the_sha256_of_every_file_and_of_the_protocol(
    box: Box, tmp_path: Path
) -> None:
    result = export(box, "outcomes", tmp_path / "outcomes.csv")
    manifest = json.loads((tmp_path / "outcomes.manifest.json").read_text())
    assert manifest["protocol_sha256"] == trial_row(box).protocol_sha256
    assert {f["name"]: f["sha256"] for f in manifest["files"]} == {
        "outcomes.csv": sha256(tmp_path / "outcomes.csv"),
        "outcomes.dictionary.csv": sha256(tmp_path / "outcomes.dictionary.csv"),
    }
    assert (manifest["export"], manifest["blinded"], manifest["training"]) == (
        "outcomes", True, False)
    assert manifest["columns"] == list(OUTCOME_COLUMNS)
    assert (manifest["rows"], manifest["participants"]) == (24, 6)
    assert "TRAINING" not in manifest
    assert [f.path.name for f in result.files] == [
        "outcomes.csv", "outcomes.dictionary.csv", "outcomes.manifest.json"]
    assert result.files[2].sha256 == sha256(tmp_path / "outcomes.manifest.json")


def test_every_export_is_audited_with_the_sha256_of_each_file(box: Box, tmp_path: Path
                                                              ) -> None:
    result = export(box, "diary", tmp_path / "diary.csv")
    [event] = box.events("export.diary")
    after = json.loads(event.after_json or "")
    assert (event.user_name, event.entity, event.entity_id) == (
        "ivan", "export", sha256(tmp_path / "diary.csv"))
    assert after["files"] == {f.path.name: sha256(f.path) for f in result.files}
    assert (after["blinded"], after["rows"]) == (True, result.rows)
    assert box.verify().ok


def test_a_training_trial_marks_the_manifest_and_the_dictionary(box: Box, tmp_path: Path
                                                               ) -> None:
    box.conn.execute(update(Trial).values(training=True))
    export(box, "outcomes", tmp_path / "o.csv")
    manifest = json.loads((tmp_path / "o.manifest.json").read_text())
    assert manifest["training"] is True
    assert manifest["TRAINING"].startswith("TRAINING - not for clinical use")
    assert read_csv(tmp_path / "o.dictionary.csv")[1][0] == "TRAINING"
    assert tuple(read_csv(tmp_path / "o.csv")[0]) == OUTCOME_COLUMNS  # the data unchanged


# --- diary.csv -------------------------------------------------------------------------------


def test_the_diary_has_one_row_per_recorded_day_with_the_specified_columns(
    box: Box, tmp_path: Path
) -> None:
    result = export(box, "diary", tmp_path / "diary.csv")
    rows = read_csv(tmp_path / "diary.csv")
    assert tuple(rows[0]) == DIARY_COLUMNS
    with box.tx() as s:
        stored = s.exec(select(DiaryEntry).where(col(DiaryEntry.current).is_(True))).all()
    assert result.rows == len(rows) - 1 == len(stored)
    assert {(r[0], r[1]) for r in rows[1:]} == {(e.participant_id, e.day.isoformat())
                                                for e in stored}
    assert not arm_words((tmp_path / "diary.csv").read_text())


def not_randomized_keeps_a_diary(box: Box) -> None:
    with box.tx() as s:
        record_day(s, box.actor("cora"), "TWH-006",
                   DiaryDay(box.clock.now().date(), False, "none", 0.0, False), clock=box.clock)


def test_a_diary_row_says_where_the_day_falls_and_how_it_counts(box: Box, tmp_path: Path
                                                                ) -> None:
    not_randomized_keeps_a_diary(box)
    export(box, "diary", tmp_path / "diary.csv")
    rows = {(r["participant_id"], r["date"]): r for r in as_dicts(tmp_path / "diary.csv")}
    day0 = box.clock.now().date() - timedelta(days=FOLLOW_UP_DAYS)
    first = rows[("TWH-001", str(day0 + timedelta(days=1)))]
    assert {k: first[k] for k in ("study_day", "window", "headache", "severity",
                                  "duration_hours", "acute_medication", "headache_day",
                                  "recorded_by")} == {
        "study_day": "1", "window": "D1-28", "headache": "yes", "severity": "moderate",
        "duration_hours": "6.0", "acute_medication": "no", "headache_day": "yes",
        "recorded_by": "cora"}
    assert first["recorded_at"].endswith("+00:00")
    baseline = rows[("TWH-001", str(day0 - timedelta(days=28)))]
    assert (baseline["study_day"], baseline["window"]) == ("-28", "BASELINE")
    not_infused = [r for r in rows.values() if r["participant_id"] == "TWH-004"]
    assert not_infused and all(r["study_day"] == "" for r in not_infused)
    [not_randomized] = [r for r in rows.values() if r["participant_id"] == "TWH-006"]
    assert (not_randomized["study_day"], not_randomized["window"]) == ("", "")


def test_a_corrected_day_is_exported_as_its_current_version(box: Box, tmp_path: Path) -> None:
    day = box.clock.now().date() - timedelta(days=FOLLOW_UP_DAYS - 2)
    with box.tx() as s:
        record_day(s, box.actor("cora"), "TWH-001", DiaryDay(day, True, "severe", 2.5, True),
                   reason="paper diary re-read", clock=box.clock)
    export(box, "diary", tmp_path / "diary.csv")
    [r] = [r for r in as_dicts(tmp_path / "diary.csv")
           if (r["participant_id"], r["date"]) == ("TWH-001", str(day))]
    assert (r["severity"], r["duration_hours"], r["acute_medication"], r["headache_day"]) == (
        "severe", "2.5", "yes", "yes")


# --- spreadsheet formula injection -----------------------------------------------------------


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1", "-1", "@SUM(A1)",
                                  "\tcmd", "\rcmd"])
def test_a_text_cell_that_looks_like_a_formula_is_escaped(text: str) -> None:
    assert escape_text(text) == "'" + text
    assert escape_text("cora") == "cora" and escape_text("") == ""


def test_free_text_is_escaped_in_the_file_and_numbers_are_never_altered(
    box: Box, tmp_path: Path
) -> None:
    # Written past the services, as someone with database access could.
    box.conn.execute(text("UPDATE diary_entry SET recorded_by = :v WHERE participant_id = "
                          "'TWH-002'"), {"v": "=cmd|' /C calc'!A0"})
    export(box, "diary", tmp_path / "diary.csv")
    rows = as_dicts(tmp_path / "diary.csv")
    assert {r["recorded_by"] for r in rows if r["participant_id"] == "TWH-002"} == {
        "'=cmd|' /C calc'!A0"}
    assert {r["study_day"] for r in rows if r["window"] == "BASELINE"
            and r["participant_id"] in INFUSED} == {str(k) for k in range(-28, 0)}
    export(box, "outcomes", tmp_path / "o.csv")
    assert row(as_dicts(tmp_path / "o.csv"), "TWH-001", "D1-28")["change_from_baseline"] == (
        "-6.0")


# --- who may export, and when ----------------------------------------------------------------


@pytest.mark.parametrize("who", ["cora", "phil", "mona", "alice"])
def test_only_investigators_export(box: Box, tmp_path: Path, who: str) -> None:
    err = box.refused(PermissionDenied, lambda: export(box, "outcomes", tmp_path / "o.csv",
                                                       by=who))
    assert "lacks the permission to export data" in err.message
    assert list(tmp_path.iterdir()) == []


def test_an_unblinded_export_before_the_lock_is_refused_and_audited(box: Box, tmp_path: Path
                                                                    ) -> None:
    before = box.state()
    err = box.refused(ExportRefused, lambda: export(box, "outcomes", tmp_path / "u.csv",
                                                    unblinded=True))
    assert err.message == ("the unblinded export is refused: the database is not locked yet "
                           "(an investigator locks it)")
    assert list(tmp_path.iterdir()) == []
    [event] = box.events("export.refused")
    assert (event.user_name, event.entity_id) == ("ivan", "outcomes/unblinded")
    assert box.events("envelope.open")[-1].seq < event.seq  # the world's own openings only
    assert box.state() == before  # the refusal's record aside, nothing was written


def test_after_the_lock_a_custodian_exports_the_arm_last(box: Box, tmp_path: Path) -> None:
    lock(box)
    result = export(box, "outcomes", tmp_path / "u.csv", unblinded=True)
    rows = read_csv(tmp_path / "u.csv")
    assert tuple(rows[0]) == (*OUTCOME_COLUMNS, "arm")
    assert {(r[0], r[-1]) for r in rows[1:]} == {(pid, ARMS[pid]) for pid in RANDOMIZED}
    assert result.blinded is False
    manifest = json.loads((tmp_path / "u.manifest.json").read_text())
    assert manifest["blinded"] is False and manifest["database_locked_at"]
    described = read_csv(tmp_path / "u.dictionary.csv")[-1]
    assert described[0] == "arm" and "KET (Ketamine)" in described[4]
    openings = [json.loads(e.after_json or "") for e in box.events("envelope.open")
                if "export" in (e.after_json or "")]
    assert sorted(o["participant"] for o in openings) == sorted(RANDOMIZED)
    assert {o["purpose"] for o in openings} == {"unblinded outcomes export"}
    [event] = box.events("export.outcomes")
    assert json.loads(event.after_json or "")["blinded"] is False
    assert not arm_words(event.after_json or "") and box.verify().ok


def test_after_the_lock_the_unblinded_diary_has_the_arm_of_randomized_participants(
    box: Box, tmp_path: Path
) -> None:
    not_randomized_keeps_a_diary(box)
    lock(box)
    export(box, "diary", tmp_path / "d.csv", unblinded=True)
    arms = {(r["participant_id"], r["arm"]) for r in as_dicts(tmp_path / "d.csv")}
    assert arms == {(pid, ARMS[pid]) for pid in RANDOMIZED} | {("TWH-006", "")}


def test_after_the_lock_a_non_custodian_is_refused_the_arm(box: Box, tmp_path: Path) -> None:
    lock(box)
    err = box.refused(ExportRefused, lambda: export(box, "outcomes", tmp_path / "u.csv",
                                                    by="iris", unblinded=True))
    assert err.message == "the unblinded export is refused: iris is not an unblinding custodian"
    assert [e.user_name for e in box.events("export.refused")] == ["iris"]
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_password_opens_nothing_and_writes_nothing(box: Box, tmp_path: Path) -> None:
    lock(box)
    before = box.state()
    box.refused(AuthenticationFailed, lambda: export(box, "outcomes", tmp_path / "u.csv",
                                                     unblinded=True, password="wrong-guess"))
    box.refused(InvalidInput, lambda: export(box, "outcomes", tmp_path / "u.csv",
                                             unblinded=True, password=None))
    assert box.state() == before and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["o.txt", "nowhere/o.csv", "."])
def test_a_bad_output_file_is_refused_before_anything(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput, match="output file"):
        ExportFiles(tmp_path / name)


def test_a_file_that_cannot_be_written_is_one_message_and_no_audit_event(
    box: Box, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ExportFiles, "partial", lambda self, final: tmp_path / "gone" / "x")
    before = box.state()
    err = box.refused(InvalidInput, lambda: export(box, "outcomes", tmp_path / "o.csv"))
    assert err.message.startswith(f"cannot write {tmp_path / 'o.csv'}: ")
    assert box.state() == before and list(tmp_path.iterdir()) == []


def test_an_unknown_export_is_bad_input(box: Box, tmp_path: Path) -> None:
    err = box.refused(InvalidInput, lambda: export(box, "arms", tmp_path / "a.csv"))
    assert err.message == "unknown export 'arms': choose outcomes, diary or participants"
    assert list(tmp_path.iterdir()) == []


# --- the database lock -----------------------------------------------------------------------


def test_an_investigator_locks_the_database_and_it_is_audited(box: Box) -> None:
    r = lock(box)
    assert (r.locked_by, r.locked_at, r.participants, r.randomized) == (
        "iris", box.clock.now(), 8, 6)
    [event] = box.events("trial.lock")
    assert (event.user_name, event.role, event.entity) == ("iris", "investigator", "trial")
    assert json.loads(event.before_json or "")["locked_at"] is None
    after = json.loads(event.after_json or "")
    assert (after["locked_by"], after["locked_at"][:10]) == ("iris", str(box.clock.now().date()))
    assert box.verify().ok


@pytest.mark.parametrize("who", ["cora", "phil", "mona", "alice"])
def test_only_an_investigator_locks(box: Box, who: str) -> None:
    err = box.refused(PermissionDenied, lambda: lock(box, who))
    assert "lacks the permission to lock the database" in err.message
    assert trial_row(box).locked_at is None


def test_a_second_lock_is_refused(box: Box) -> None:
    locked_at = box.clock.now()
    lock(box)
    box.clock.advance(hours=1)
    err = box.refused(Refused, lambda: lock(box, "ivan"))
    # Both KetHead sites are in Toronto: the lock time is theirs, EDT (UTC-4) in May-October
    assert 4 <= locked_at.month <= 10
    toronto = (locked_at - timedelta(hours=4)).strftime("%Y-%m-%d %H:%M")
    assert err.message == f"KETHEAD is already locked: since {toronto} EDT, by iris"
    assert len(box.events("trial.lock")) == 1


def clinical_writes(box: Box) -> dict[str, Any]:
    cora, phil = box.actor("cora"), box.actor("phil")
    today = box.clock.now().date()

    def run(action: Any) -> Any:
        def go() -> Any:
            with box.tx() as s:
                return action(s)
        return go

    return {
        "screen": run(lambda s: screen(s, cora, site="TWH", age=40, sex="F", weight_kg=70.0,
                                       factors={"headache_type": "CM"},
                                       answers=eligible_answers(), clock=box.clock)),
        "consent": run(lambda s: consent(s, cora, "TWH-006", on=today, form_version="2.0",
                                         clock=box.clock)),
        "withdraw": run(lambda s: withdraw(s, cora, "TWH-002", reason="moved",
                                           clock=box.clock)),
        "randomize": run(lambda s: randomize(s, cora, "TWH-006", clock=box.clock)),
        "dispense": run(lambda s: dispense(s, phil, "TWH-004", password=PASSWORD,
                                           clock=box.clock)),
        "label": run(lambda s: print_labels(s, phil, "TWH-001", clock=box.clock)),
        "infuse": run(lambda s: infuse(s, cora, "TWH-004", on=today, clock=box.clock)),
        "diary": run(lambda s: record_day(s, cora, "TWH-001",
                                          DiaryDay(today, False, "none", 0.0, False),
                                          clock=box.clock)),
        "import": run(lambda s: import_diary(s, cora, (DIARY_HEADER + f"SHS-001,{today},no,,,"
                                                       "no\n").encode(), source="late.csv",
                                             clock=box.clock)),
    }


def test_after_the_lock_no_clinical_write_is_accepted(box: Box) -> None:
    lock(box)
    before = box.state()
    for name, action in clinical_writes(box).items():
        err = box.refused(Refused, action)
        assert err.message.startswith("the database was locked on "), name
        assert err.message.endswith("by iris: clinical data can no longer change"), name
    assert box.state() == before


def test_emergency_unblinding_still_works_after_the_lock(box: Box) -> None:
    lock(box)
    u = box.unblind("TWH-001", "anaphylaxis at follow-up visit")
    assert u.arm_code == ARMS["TWH-001"]
    assert box.participants()["TWH-001"].unblinded_emergency


def test_changing_the_lock_outside_trialkit_is_caught(box: Box) -> None:
    lock(box)
    assert box.verify().ok
    box.conn.execute(update(Trial).values(locked_at=None, locked_by=None))
    report = box.verify()
    assert not report.ok and "trial 'KETHEAD' no longer matches" in (report.problem or "")


def test_verification_still_passes_on_a_trial_that_was_never_locked(box: Box) -> None:
    assert box.verify().ok
    with box.tx() as s:
        assert verification.verify(s).ok
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "trial.lock")).all() == []


def test_a_lock_between_exports_changes_nothing_blinded(box: Box, tmp_path: Path) -> None:
    export(box, "outcomes", tmp_path / "before.csv")
    lock(box)
    export(box, "outcomes", tmp_path / "after.csv")
    assert (tmp_path / "before.csv").read_bytes() == (tmp_path / "after.csv").read_bytes()
    assert io.StringIO((tmp_path / "after.csv").read_text()).readline().rstrip() == ",".join(
        OUTCOME_COLUMNS)


# --- participants.csv: baseline covariates and the date of each stage ------------------------

# The words: age, sex, weight, the stratification factors (KetHead has one,
# headache_type), site, and the date of each stage, one row per screened participant.
PARTICIPANT_HEADER = (
    "participant_id", "site", "stratum", "headache_type", "age", "sex", "weight_kg",
    "eligible", "failed_criteria", "status", "unblinded_emergency", "screened_on",
    "consented_on", "consent_form_version", "randomization_number", "randomized_on",
    "dispensed_on", "planned_infusion_on", "infusion_on", "withdrawn_on", "withdrawal_reason",
)
TORONTO = ZoneInfo("America/Toronto")  # both KetHead sites' zone in the protocol


def toronto_date(at: datetime | None) -> str:
    return at.astimezone(TORONTO).date().isoformat() if at else ""


def test_the_participants_export_has_one_row_per_screened_person_and_no_arm(
    box: Box, tmp_path: Path
) -> None:
    result = export(box, "participants", tmp_path / "participants.csv")
    rows = read_csv(tmp_path / "participants.csv")
    assert tuple(rows[0]) == PARTICIPANT_HEADER
    screened = sorted(WEIGHTS) + [INELIGIBLE]
    assert sorted(r[0] for r in rows[1:]) == sorted(screened)
    assert (result.rows, result.participants, result.blinded) == (8, 8, True)
    shown = (tmp_path / "participants.csv").read_text()
    assert not arm_words(shown)
    for lot in ("K2403", "S2311"):
        assert lot not in shown
    [event] = box.events("export.participants")
    assert json.loads(event.after_json or "")["participants"] == 8
    assert not arm_words(event.after_json or "")


def test_each_row_holds_what_was_recorded_at_each_stage(box: Box, tmp_path: Path) -> None:
    export(box, "participants", tmp_path / "p.csv")
    rows = {r["participant_id"]: r for r in as_dicts(tmp_path / "p.csv")}
    stored = box.participants()
    with box.tx() as s:
        first_prep = {pid: min(p.prepared_at for p in s.exec(select(Preparation).where(
            Preparation.participant_id == pid))) for pid in INFUSED}
        raw = {p.id: p for p in s.exec(select(Participant))}
    day0 = box.clock.now().date() - timedelta(days=FOLLOW_UP_DAYS)
    for pid, weight in WEIGHTS.items():
        r, p = rows[pid], raw[pid]
        site = pid[:3]
        level = "CM" if site == "TWH" else "CDH"  # as the world screened them
        assert {k: r[k] for k in ("site", "stratum", "headache_type", "age", "sex",
                                  "weight_kg", "eligible", "failed_criteria")} == {
            "site": site, "stratum": f"{site}-{level}", "headache_type": level, "age": "40",
            "sex": "F", "weight_kg": str(weight), "eligible": "yes", "failed_criteria": ""}
        assert r["screened_on"] == toronto_date(p.screened_at)
        assert p.consent_date is not None
        assert (r["consented_on"], r["consent_form_version"]) == (p.consent_date.isoformat(),
                                                                  "2.0")
        assert r["randomized_on"] == toronto_date(p.randomized_at)
        assert r["randomization_number"] == (p.randomization_number or "")
        assert r["status"] == stored[pid].status
        assert r["infusion_on"] == (str(day0) if pid in INFUSED else "")
        assert r["dispensed_on"] == toronto_date(first_prep.get(pid))
        assert r["unblinded_emergency"] == ("yes" if pid == UNBLINDED else "no")
    assert (rows[WITHDRAWN]["withdrawn_on"], rows[WITHDRAWN]["withdrawal_reason"]) == (
        toronto_date(raw[WITHDRAWN].withdrawn_at), "moved away")
    assert all(rows[pid]["withdrawn_on"] == "" for pid in WEIGHTS if pid != WITHDRAWN)
    assert rows[NOT_RANDOMIZED]["randomized_on"] == rows[NOT_RANDOMIZED]["dispensed_on"] == ""


def test_a_screen_failure_says_which_criteria_it_failed(box: Box, tmp_path: Path) -> None:
    export(box, "participants", tmp_path / "p.csv")
    failed = next(r for r in as_dicts(tmp_path / "p.csv") if r["participant_id"] == INELIGIBLE)
    # aged 16 (the protocol's range is 18 to 75) and pregnant (exclusion E01)
    assert (failed["eligible"], failed["failed_criteria"], failed["status"]) == (
        "no", "I1_age;E01_pregnancy", "ineligible")
    assert failed["consented_on"] == failed["randomized_on"] == ""


def test_the_participants_dictionary_describes_every_column(box: Box, tmp_path: Path) -> None:
    export(box, "participants", tmp_path / "participants.csv")
    rows = read_csv(tmp_path / "participants.dictionary.csv")
    described = {r[0]: r for r in rows[1:]}
    assert tuple(described) == PARTICIPANT_HEADER
    # a stratification factor may not take a participant field's name (protocol check)
    assert set(PARTICIPANT_HEADER) - {"headache_type"} == PARTICIPANT_FIELDS
    assert described["headache_type"][4] == (
        "CM (Chronic migraine), CDH (Other chronic daily headache)")
    assert described["weight_kg"][1:3] == ["decimal", "kg"]
    assert described["age"][1:3] == ["integer", "years"]
    assert all(described[c][1] == "date" for c in PARTICIPANT_HEADER if c.endswith("_on"))
    manifest = json.loads((tmp_path / "participants.manifest.json").read_text())
    assert (manifest["export"], manifest["blinded"], manifest["columns"]) == (
        "participants", True, list(PARTICIPANT_HEADER))
    assert {f["name"]: f["sha256"] for f in manifest["files"]} == {
        "participants.csv": sha256(tmp_path / "participants.csv"),
        "participants.dictionary.csv": sha256(tmp_path / "participants.dictionary.csv")}


def test_the_participants_export_is_never_unblinded(box: Box, tmp_path: Path) -> None:
    lock(box)
    before = box.state()
    err = box.refused(InvalidInput, lambda: export(box, "participants", tmp_path / "u.csv",
                                                   unblinded=True))
    assert err.message.startswith("the participants export is always blinded")
    assert box.state() == before and list(tmp_path.iterdir()) == []


def test_a_withdrawal_reason_that_looks_like_a_formula_is_escaped(box: Box, tmp_path: Path
                                                                  ) -> None:
    with box.tx() as s:
        withdraw(s, box.actor("cora"), "TWH-004", reason="=HYPERLINK(\"http://x\")",
                 clock=box.clock)
    export(box, "participants", tmp_path / "p.csv")
    r = next(r for r in as_dicts(tmp_path / "p.csv") if r["participant_id"] == "TWH-004")
    assert r["withdrawal_reason"] == "'=HYPERLINK(\"http://x\")"


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=st.lists(st.tuples(
    st.sampled_from(["TWH", "SHS"]), st.integers(12, 99), st.sampled_from(["F", "M"]),
    st.integers(300, 2500).map(lambda w: w / 10), st.sampled_from(["CM", "CDH"])),
    min_size=1, max_size=4))
def test_the_baseline_covariates_are_those_screened(
    world: World, tmp_path: Path, people: list[tuple[str, int, str, float, str]]
) -> None:
    eligibility = PROTOCOL.eligibility
    with window(world) as box:
        ids = []
        for site, age, sex, weight, level in people:
            with box.tx() as s:
                ids.append(screen(s, box.actor("cora"), site=site, age=age, sex=sex,
                                  weight_kg=weight, factors={"headache_type": level},
                                  answers=eligible_answers(), clock=box.clock).id)
        out = tmp_path / f"p{abs(hash(tuple(people)))}.csv"
        export(box, "participants", out)
        rows = {r["participant_id"]: r for r in as_dicts(out)}
        for pid, (site, age, sex, weight, level) in zip(ids, people, strict=True):
            r = rows[pid]
            in_range = eligibility.age_min <= age <= eligibility.age_max
            assert (r["site"], r["age"], r["sex"], r["weight_kg"], r["headache_type"]) == (
                site, str(age), sex, str(weight), level)
            assert r["stratum"] == f"{site}-{level}"
            assert (r["eligible"], r["failed_criteria"]) == (
                ("yes", "") if in_range else ("no", "I1_age"))
            assert r["status"] == ("eligible" if in_range else "ineligible")
