"""Every procedure a protocol may choose, end to end on SQLite and PostgreSQL: sealed,
extended, randomized from, dispensed, verified, locked; then the randomization report
reproduces every participant's arm as the unblinded export gives it, and every envelope's
arm as the pharmacist reads it; the procedures with an imbalance limit keep within it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.builders import consented, record_baseline
from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user, sign_in
from trialkit.domain.errors import PermissionDenied
from trialkit.domain.protocol import protocol_from_text
from trialkit.domain.roles import Role
from trialkit.services.administration.database_lock import lock_database
from trialkit.services.administration.setup import initialize
from trialkit.services.enrolment.allocation import extend_list, seal_lists
from trialkit.services.enrolment.participants import randomize
from trialkit.services.exports.datasets import ExportFiles, export_table
from trialkit.services.exports.randomization_report import csv_rows, randomization_report
from trialkit.services.integrity import verification
from trialkit.services.integrity.list_verification import verify_lists
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.store.db import make_engine, read_only, transaction

DESIGNS = {
    "permuted-blocks": ('procedure = "permuted-blocks"\nblock_sizes = [4, 6]\n'
                        "block_weights = [1, 3]", 3),
    "big-stick": ('procedure = "big-stick"\nmti = 2', 2),
    "block-urn": ('procedure = "block-urn"\nlambda = 2', 2),
    "maximal": ('procedure = "maximal"\nmti = 2', 2),
    "efron": ('procedure = "efron"\np = 0.75', None),
    "complete": ('procedure = "complete"', None),
}


def _trial(db_url: str, clock: SteppingClock, allocation: str) -> Engine:
    text = Path(KETHEAD).read_text(encoding="utf-8")
    assert "block_sizes = [4, 6]\n" in text
    loaded = protocol_from_text(text.replace("block_sizes = [4, 6]\n", allocation + "\n"),
                                "design.toml")
    engine = make_engine(db_url, must_exist=False)
    initialize(engine, loaded, admin=ADMIN, admin_password=PASSWORD, training=False, clock=clock)
    return engine


@pytest.mark.parametrize("name", list(DESIGNS))
def test_each_procedure_seals_randomizes_dispenses_verifies_and_reports(
    db_url: str, clock: SteppingClock, tmp_path: Path, name: str
) -> None:
    allocation, limit = DESIGNS[name]
    engine = _trial(db_url, clock, allocation)
    alice = sign_in(engine, ADMIN, clock)
    add_user(engine, alice, clock, "phil", Role.PHARMACIST)
    add_user(engine, alice, clock, "cora", Role.COORDINATOR, sites=["TWH", "SHS"])
    add_user(engine, alice, clock, "iris", Role.INVESTIGATOR)
    add_user(engine, alice, clock, "ivan", Role.INVESTIGATOR, custodian=True)
    phil, cora, iris, ivan = (sign_in(engine, n, clock) for n in ("phil", "cora", "iris", "ivan"))
    with transaction(engine) as s:
        sealed = seal_lists(s, alice, per_stratum=3, block_sizes=None, clock=clock)
    assert {c.envelopes for c in sealed.lists} == {3}
    with transaction(engine) as s:
        extend_list(s, alice, stratum="TWH-CM", count=2, block_sizes=None, clock=clock)

    people = [consented(engine, cora, clock, site=site, headache_type=h).id
              for site, h in [("TWH", "CM")] * 5 + [("SHS", "CDH")]]
    record_baseline(engine, cora, clock, *people)
    numbers = {}
    for pid in people:
        with transaction(engine) as s:
            numbers[pid] = randomize(s, cora, pid, clock=clock).randomization_number
    opened = {}
    for pid in people:
        with transaction(engine) as s:
            opened[pid] = dispense(s, phil, pid, password=PASSWORD, clock=clock).arm_code
    with read_only(engine) as s:
        assert [c.problem for c in verify_lists(s)] == [None] * 5
        assert verification.verify(s).ok

    with transaction(engine) as s:
        lock_database(s, iris, clock=clock)
    files = ExportFiles(tmp_path / "unblinded.csv")
    with files:
        with transaction(engine) as s:
            export_table(s, ivan, "outcomes", files, clock=clock, unblinded=True,
                         password=PASSWORD)
        files.publish()
    with (tmp_path / "unblinded.csv").open(newline="", encoding="utf-8") as f:
        exported = {r["participant_id"]: r["arm"] for r in csv.DictReader(f)}
    assert exported == opened

    with transaction(engine) as s:
        report = randomization_report(s, ivan, password=PASSWORD, clock=clock)
    reported = {e.participant_id: e.arm_code for e in report.envelopes if e.participant_id}
    assert reported == opened
    assert {e.participant_id: e.randomization_number for e in report.envelopes
            if e.participant_id} == numbers
    assert all(s.verified == "ok" for s in report.segments)
    assert {s.procedure["procedure"] for s in report.segments} == {name}
    for stratum in ("TWH-CM", "TWH-CDH", "SHS-CM", "SHS-CDH"):
        mine = [e for e in report.envelopes if e.stratum == stratum]
        assert [e.seq for e in mine] == list(range(1, len(mine) + 1))
        assert sum(e.released for e in mine) == (5 if stratum == "TWH-CM" else 3)
        assert all(e.released for e in mine if e.participant_id)
        running = worst = 0
        for e in mine:
            running += 1 if e.arm_code == "KET" else -1
            worst = max(worst, abs(running))
        if limit is not None:
            assert worst <= limit and running == 0, [e.arm_code for e in mine]
        blocks = [e.block for e in mine]
        assert blocks == sorted(blocks) and all(
            sum(1 for x in mine if x.block == b) == x.block_size for b in set(blocks)
            for x in mine if x.block == b)
    rows = csv_rows(report)
    assert len(rows) == len(report.envelopes)
    assert {r[10]: r[7] for r in rows if r[10]} == opened
    assert json.loads(rows[0][14])["procedure"] == name


def test_the_randomization_report_is_for_custodians_after_the_lock(
    db_url: str, clock: SteppingClock
) -> None:
    engine = _trial(db_url, clock, 'procedure = "big-stick"\nmti = 3')
    alice = sign_in(engine, ADMIN, clock)
    add_user(engine, alice, clock, "phil", Role.PHARMACIST)
    add_user(engine, alice, clock, "iris", Role.INVESTIGATOR)
    phil, iris = sign_in(engine, "phil", clock), sign_in(engine, "iris", clock)
    with transaction(engine) as s:
        seal_lists(s, alice, per_stratum=2, block_sizes=None, clock=clock)
    with pytest.raises(PermissionDenied, match="not locked yet"), transaction(engine) as s:
        randomization_report(s, phil, password=PASSWORD, clock=clock)
    with transaction(engine) as s:
        lock_database(s, iris, clock=clock)
    with pytest.raises(PermissionDenied, match="iris is not an unblinding custodian"), \
            transaction(engine) as s:
        randomization_report(s, iris, password=PASSWORD, clock=clock)
    from sqlmodel import select

    from trialkit.store.models import AuditEvent

    with read_only(engine) as s:
        refused = s.exec(select(AuditEvent.user_name)
                         .where(AuditEvent.action == "procedure.refused")).all()
    assert list(refused) == ["phil", "iris"]
