"""Steps for ``features/export.feature``: blinded exports with their dictionary and
checksums, the database lock, and the unblinded export only a custodian gets after it.

Every scenario runs on SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL, through the
services the command line calls. The trial is built once per backend
(``tests.db.test_export.build_export_world``, whose sealed lists are forced so the arms are
known) and each scenario runs in a window on it whose changes are rolled back at its end."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.conftest import PASSWORD
from tests.db.test_export import RANDOMIZED, build_export_world
from tests.db.test_pharmacy import ARMS, Box, World, arm_words, trial_on_each_backend, window
from trialkit.domain.diary import DiaryDay
from trialkit.domain.errors import TrialkitError
from trialkit.domain.roles import Role
from trialkit.services.administration.database_lock import lock_database
from trialkit.services.diary.entries import record_day
from trialkit.services.exports.datasets import OUTCOME_COLUMNS, ExportFiles, export_table

scenarios("export.feature")


@dataclass
class ExportWorld:
    """One scenario's window on the trial, its folder, and what the last "When" gave."""

    box: Box
    folder: Path
    outcome: Any = None
    events_before: int = 0

    def attempt(self, action: Callable[[], Any]) -> None:
        self.events_before = len(self.box.events())
        try:
            self.outcome = action()
        except TrialkitError as err:
            self.outcome = err

    def export(self, who: str, name: str, *, unblinded: bool, kind: str = "outcomes") -> Any:
        files = ExportFiles(self.folder / name)
        with files:
            with self.box.tx() as s:
                result = export_table(s, self.box.actor(who), kind, files,
                                      clock=self.box.clock, unblinded=unblinded,
                                      password=PASSWORD)
            files.publish()
        return result

    def records(self, name: str) -> list[dict[str, str]]:
        with (self.folder / name).open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def rows(self, name: str) -> list[list[str]]:
        with (self.folder / name).open(newline="", encoding="utf-8") as f:
            return list(csv.reader(f))

    def new_events(self) -> list[Any]:
        return self.box.events()[self.events_before:]


trial = trial_on_each_backend("export-bdd", build_export_world)


@pytest.fixture(autouse=True)
def world(trial: World, tmp_path: Path) -> Iterator[ExportWorld]:
    """Autouse, so that every scenario is collected once per backend."""
    with window(trial) as box:
        yield ExportWorld(box, tmp_path)


# --- Background ------------------------------------------------------------------------------


@given("the KetHead trial has randomized participants who kept their diaries")
def randomized_with_diaries(world: ExportWorld) -> None:
    seen = world.box.participants()
    assert [pid for pid in RANDOMIZED if seen[pid].randomization_number] == list(RANDOMIZED)


@given(parsers.parse('"{name}" is an investigator who holds the unblinding keys'))
def custodian_investigator(world: ExportWorld, name: str) -> None:
    actor = world.box.actor(name)
    assert (actor.role, actor.custodian) == (Role.INVESTIGATOR, True)


@given(parsers.parse('"{name}" is an investigator who does not'))
def plain_investigator(world: ExportWorld, name: str) -> None:
    actor = world.box.actor(name)
    assert (actor.role, actor.custodian) == (Role.INVESTIGATOR, False)


@given(parsers.parse('"{name}" has locked the database'))
def locked(world: ExportWorld, name: str) -> None:
    with world.box.tx() as s:
        lock_database(s, world.box.actor(name), clock=world.box.clock)


# --- exporting -------------------------------------------------------------------------------


@when(parsers.parse('"{who}" exports the outcomes to "{name}"'))
def export_blinded(world: ExportWorld, who: str, name: str) -> None:
    world.attempt(lambda: world.export(who, name, unblinded=False))


@when(parsers.parse('"{who}" exports the outcomes with the arms to "{name}"'))
def export_unblinded(world: ExportWorld, who: str, name: str) -> None:
    world.attempt(lambda: world.export(who, name, unblinded=True))


@then(parsers.parse('"{name}" has exactly the columns of the outcomes table'))
def exact_columns(world: ExportWorld, name: str) -> None:
    assert tuple(world.rows(name)[0]) == OUTCOME_COLUMNS


@then(parsers.parse('nothing in "{name}" names a treatment arm'))
def no_arm(world: ExportWorld, name: str) -> None:
    assert not arm_words((world.folder / name).read_text(encoding="utf-8"))


@then("a data dictionary and a manifest with the checksum of every file lie beside it")
def dictionary_and_manifest(world: ExportWorld) -> None:
    names = sorted(p.name for p in world.folder.iterdir())
    assert names == ["outcomes.csv", "outcomes.dictionary.csv", "outcomes.manifest.json"]
    manifest = json.loads((world.folder / "outcomes.manifest.json").read_text())
    for f in manifest["files"]:
        assert f["sha256"] == hashlib.sha256((world.folder / f["name"]).read_bytes()).hexdigest()
    described = [r[0] for r in world.rows("outcomes.dictionary.csv")[1:]]
    assert described == list(OUTCOME_COLUMNS)


@then("the audit trail records the export with the checksum of every file")
def export_audited(world: ExportWorld) -> None:
    [event] = [e for e in world.new_events() if e.action == "export.outcomes"]
    files = json.loads(event.after_json or "")["files"]
    assert files == {name: hashlib.sha256((world.folder / name).read_bytes()).hexdigest()
                     for name in files}
    assert len(files) == 3


@then(parsers.parse('"{who}" is refused: "{message}"'))
def refused(world: ExportWorld, who: str, message: str) -> None:
    assert isinstance(world.outcome, TrialkitError), world.outcome
    assert (world.outcome.message, world.outcome.exit_code) == (message, 1)


@then(parsers.parse('no file "{name}" was written'))
def nothing_written(world: ExportWorld, name: str) -> None:
    assert list(world.folder.iterdir()) == []


@then("the audit trail records the refusal")
def refusal_audited(world: ExportWorld) -> None:
    assert [e.action for e in world.new_events()] == ["export.refused"]


@then(parsers.parse('"{name}" has the columns of the outcomes table and "{column}" last'))
def columns_and_arm(world: ExportWorld, name: str, column: str) -> None:
    assert tuple(world.rows(name)[0]) == (*OUTCOME_COLUMNS, column)


@then(parsers.parse("each participant's arm in \"{name}\" is the one sealed in their envelope"))
def arms_as_sealed(world: ExportWorld, name: str) -> None:
    assert {(r[0], r[-1]) for r in world.rows(name)[1:]} == {
        (pid, ARMS[pid]) for pid in RANDOMIZED}


# --- the participants ------------------------------------------------------------------------


@when(parsers.parse('"{who}" exports the participants to "{name}"'))
def export_participants(world: ExportWorld, who: str, name: str) -> None:
    world.attempt(lambda: world.export(who, name, unblinded=False, kind="participants"))


@when(parsers.parse('"{who}" exports the participants with the arms to "{name}"'))
def export_participants_unblinded(world: ExportWorld, who: str, name: str) -> None:
    world.attempt(lambda: world.export(who, name, unblinded=True, kind="participants"))


@then(parsers.parse('"{name}" has one row for each person screened'))
def one_row_each(world: ExportWorld, name: str) -> None:
    screened = world.box.participants()
    assert sorted(r["participant_id"] for r in world.records(name)) == sorted(screened)


@then("each row gives the age, sex, weight, headache type and site recorded at screening")
def covariates(world: ExportWorld) -> None:
    seen = world.box.participants()
    for r in world.records("participants.csv"):
        p = seen[r["participant_id"]]
        assert (r["age"], r["sex"], float(r["weight_kg"]), r["site"]) == (
            str(p.age), p.sex, p.weight_kg, p.site)
        assert r["headache_type"] in {"CM", "CDH"} and r["stratum"].endswith(r["headache_type"])


@then("each row gives the date of each stage the participant reached")
def stage_dates(world: ExportWorld) -> None:
    seen = world.box.participants()
    for r in world.records("participants.csv"):
        p = seen[r["participant_id"]]
        assert r["screened_on"] and r["consented_on"] == (p.consent_date or "")
        assert bool(r["randomized_on"]) == (p.randomization_number is not None)
        assert bool(r["dispensed_on"]) == (p.status in {"dispensed", "infused"})
        assert bool(r["infusion_on"]) == (p.status == "infused")
        assert bool(r["withdrawn_on"]) == (p.status == "withdrawn")


@then(parsers.parse('"{who}" is told: "{message}"'))
def told(world: ExportWorld, who: str, message: str) -> None:
    assert isinstance(world.outcome, TrialkitError), world.outcome
    assert (world.outcome.message, world.outcome.exit_code) == (message, 2)


# --- after the lock --------------------------------------------------------------------------


@when(parsers.parse('the coordinator "{who}" records a day without headache for "{pid}"'))
def record_after_lock(world: ExportWorld, who: str, pid: str) -> None:
    def record() -> Any:
        day = DiaryDay(world.box.clock.now().date(), False, "none", 0.0, False)
        with world.box.tx() as s:
            return record_day(s, world.box.actor(who), pid, day, clock=world.box.clock)

    world.attempt(record)


@then(parsers.parse('"{who}" is refused with a message ending "{end}"'))
def refused_ending(world: ExportWorld, who: str, end: str) -> None:
    assert isinstance(world.outcome, TrialkitError), world.outcome
    assert world.outcome.message.endswith(end) and world.outcome.exit_code == 1
