"""The emergency-unblinding report (``services.pharmacy.unblinding.unblinding_report``): who
unblinded
which participant, when and why, and every refused attempt, for those who may read the
audit trail — never an arm, before the lock or after it — on both backends.

The world is the pharmacy tests' (lists forced to KET, PLA, ... so arms are known)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ADMIN, BACKENDS
from tests.db.test_pharmacy import ARM_WORDS, Box, World, build_world, window
from trialkit.domain.errors import PermissionDenied, TrialkitError
from trialkit.services.administration.database_lock import lock_database
from trialkit.services.pharmacy.unblinding import UnblindingEntry, unblinding_report

READERS = ("mona", "iris", "ivan", ADMIN)
# The protocol's words: both KetHead sites keep Toronto time.
TORONTO = ZoneInfo("America/Toronto")


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    with build_world(request.param, tmp_path_factory.mktemp("unblindings")) as w:
        yield w


@pytest.fixture
def box(world: World) -> Iterator[Box]:
    with window(world) as b:
        yield b


def report(box: Box, who: str = "mona") -> list[UnblindingEntry]:
    with box.tx() as s:
        return unblinding_report(s, box.actor(who), clock=box.clock)


def test_the_report_says_who_when_why_and_which_participant(box: Box) -> None:
    box.unblind("TWH-002", "anaphylaxis in the emergency department", by="ivan")
    box.unblind("SHS-001", "overdose suspected by the treating physician", by="phil")
    try:
        box.unblind("TWH-001", "curious", by="mona")
    except TrialkitError:
        pass
    entries = report(box)
    assert [(e.participant_id, e.site, e.user, e.role, e.refused) for e in entries] == [
        ("TWH-002", "TWH", "ivan", "investigator", False),
        ("SHS-001", "SHS", "phil", "pharmacist", False),
        ("TWH-001", "TWH", "mona", "monitor", True),
    ]
    assert entries[0].reason == "anaphylaxis in the emergency department"
    assert entries[1].reason == "overdose suspected by the treating physician"
    assert "emergency-unblind" in entries[2].reason  # why it was refused
    for e in entries:
        assert e.at.utcoffset() is not None
        assert e.at_site == e.at.astimezone(TORONTO)
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)


@pytest.mark.parametrize("who", READERS)
def test_no_reader_learns_an_arm_from_the_report(box: Box, who: str) -> None:
    box.unblind("TWH-002", "suspected serious adverse reaction")
    box.unblind("TWH-001", "suspected serious adverse reaction", by="phil")
    shown = json.dumps([asdict(e) for e in report(box, who)], default=str)
    assert "TWH-002" in shown and "TWH-001" in shown
    assert ARM_WORDS.findall(shown) == []


def test_after_the_lock_the_report_still_holds_no_arm(box: Box) -> None:
    box.unblind("TWH-002", "suspected serious adverse reaction")
    with box.tx() as s:
        lock_database(s, box.actor("iris"), clock=box.clock)
    shown = json.dumps([asdict(e) for e in report(box, "ivan")], default=str)
    assert "TWH-002" in shown
    assert ARM_WORDS.findall(shown) == []


@pytest.mark.parametrize("who", ["cora", "phil"])
def test_those_who_may_not_read_the_audit_trail_are_refused(box: Box, who: str) -> None:
    # That the refusal is audited: tests/db/test_refusals_audited.py ("unblinding report").
    with pytest.raises(PermissionDenied, match="read the audit log"):
        report(box, who)


def test_nothing_to_report(box: Box) -> None:
    assert report(box) == []
