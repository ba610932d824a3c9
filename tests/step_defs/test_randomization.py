"""Steps for ``features/randomization.feature``: the admin seals the lists and sees counts,
the coordinator randomizes and gets a number and a label code, and a changed envelope is
caught. Every scenario runs on SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL (the
``db_url`` fixture), through the services the command line and the terminal UI call."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import update
from sqlmodel import col, select

from tests.builders import record_baseline
from tests.conftest import ADMIN, SteppingClock
from tests.step_defs.test_enrolment import EnrolmentWorld
from trialkit.domain.codes import check_label_code
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.domain.roles import Role
from trialkit.services.enrolment.allocation import (
    SealedCount,
    SealResult,
    seal_lists,
    stratum_usage,
)
from trialkit.services.enrolment.participants import Randomization, randomize
from trialkit.services.integrity import verification
from trialkit.services.integrity.list_verification import ListCheck, verify_lists
from trialkit.store.db import read_only, transaction
from trialkit.store.models import AllocationList, Envelope

scenarios("randomization.feature")

# Anything that would name a treatment, in any case (the trial itself is KETHEAD).
TREATMENT_WORDS = re.compile(r"\b(?:ket|pla|ketamine|placebo|saline|chloride)\b", re.I)


@dataclass
class RandomizationWorld(EnrolmentWorld):
    first: Randomization | None = None  # the first answer to a randomization, to compare

    def seal(self, per_stratum: int) -> SealResult:
        with transaction(self.engine) as s:
            return seal_lists(s, self.actor(ADMIN), per_stratum=per_stratum, block_sizes=None,
                              clock=self.clock)

    def ready(self, site: str) -> str:
        """Screen and consent an eligible participant with chronic migraine, and record her
        baseline diary (the clock moves on four weeks); her id."""
        pid = self.screen(site, headache_type="CM").id
        self.consent(pid)
        record_baseline(self.engine, self.actor(self.me), self.clock, pid)
        return pid

    def randomize(self, pid: str) -> Randomization:
        with transaction(self.engine) as s:
            return randomize(s, self.actor(self.me), pid, clock=self.clock)

    def usage(self) -> dict[str, tuple[int, int, int]]:
        """Sealed, used and left per stratum, as the admin sees them."""
        with read_only(self.engine) as s:
            return {u.stratum: (u.sealed, u.used, u.left)
                    for u in stratum_usage(s, self.actor(ADMIN))}

    def checks(self) -> list[ListCheck]:
        with read_only(self.engine) as s:
            return verify_lists(s)

    def list_id(self, stratum: str) -> str:
        with read_only(self.engine) as s:
            return s.exec(select(AllocationList.id)
                          .where(AllocationList.stratum_code == stratum)).one()


@pytest.fixture(autouse=True)
def world(db_url: str, clock: SteppingClock) -> Iterator[RandomizationWorld]:
    """Autouse, so that every scenario is collected once per backend of ``db_url``."""
    w = RandomizationWorld(db_url=db_url, clock=clock)
    yield w
    w.close()


# --- Background ------------------------------------------------------------------------------


@given(parsers.parse('the KetHead trial is running with the pharmacist "{name}"'))
def trial_with_pharmacist(world: RandomizationWorld, name: str) -> None:
    world.create_trial()
    world.add(name, Role.PHARMACIST)


@given(parsers.parse('the coordinator "{name}" works at "{site}"'))
def coordinator_at(world: RandomizationWorld, name: str, site: str) -> None:
    world.add(name, Role.COORDINATOR, [site])
    world.me = name


# --- the admin seals ---------------------------------------------------------------------------


@given(parsers.parse("the admin has sealed {count:d} envelopes for each stratum"))
def has_sealed(world: RandomizationWorld, count: int) -> None:
    world.seal(count)


@when(parsers.parse("the admin seals {count:d} envelopes for each stratum"))
def seals(world: RandomizationWorld, count: int) -> None:
    world.attempt(lambda: world.seal(count))


@then(parsers.parse('the admin is shown {count:d} envelopes for each of the strata "{strata}"'))
def shown_counts(world: RandomizationWorld, count: int, strata: str) -> None:
    assert isinstance(world.outcome, SealResult), world.outcome
    assert [(c.stratum, c.envelopes) for c in world.outcome.lists] == [
        (s.strip(), count) for s in strata.split(",")]


@then("the admin is shown nothing but those counts and the fingerprint of the signing key")
def shown_counts_only(world: RandomizationWorld) -> None:
    result = world.outcome
    assert [f.name for f in dataclasses.fields(SealResult)] == [
        "lists", "signing_key_fingerprint"]
    assert [f.name for f in dataclasses.fields(SealedCount)] == ["stratum", "envelopes"]
    assert re.fullmatch(r"[0-9a-f]{4}( [0-9a-f]{4}){3}", result.signing_key_fingerprint)
    assert not TREATMENT_WORDS.search(repr(result))


@then(parsers.parse("the list status shows {sealed:d} sealed, {used:d} used and {left:d} left "
                    "in every stratum"))
def status_everywhere(world: RandomizationWorld, sealed: int, used: int, left: int) -> None:
    assert set(world.usage().values()) == {(sealed, used, left)}


@given("checking the lists finds them intact")
@then("checking the lists finds them intact")
def lists_intact(world: RandomizationWorld) -> None:
    checks = world.checks()
    assert len(checks) == 4 and [c.problem for c in checks] == [None] * 4


# --- the coordinator randomizes ------------------------------------------------------------------


@given(parsers.parse('"{pid}" has been screened eligible, with chronic migraine, has '
                     "consented and has kept her baseline diary"))
def ready_to_randomize(world: RandomizationWorld, pid: str) -> None:
    assert world.ready("TWH") == pid


@given(parsers.parse('"{pid}" has been screened, aged {age:d}, and is not eligible'))
def screened_ineligible(world: RandomizationWorld, pid: str, age: int) -> None:
    v = world.screen("TWH", age=age)
    assert (v.id, v.eligible) == (pid, False)


@given(parsers.parse('{count:d} participants with chronic migraine have been randomized at '
                     '"{site}"'))
def several_randomized(world: RandomizationWorld, count: int, site: str) -> None:
    for _ in range(count):
        world.randomize(world.ready(site))


@given(parsers.parse('the coordinator has randomized "{pid}"'))
def has_randomized(world: RandomizationWorld, pid: str) -> None:
    world.first = world.randomize(pid)


@when(parsers.parse('the coordinator randomizes "{pid}"'))
@when(parsers.parse('the coordinator randomizes "{pid}" again'))
def randomizes(world: RandomizationWorld, pid: str) -> None:
    world.attempt(lambda: world.randomize(pid))


@then(parsers.parse('she is given the randomization number "{number}" and a label code'))
def given_number(world: RandomizationWorld, number: str) -> None:
    r = world.outcome
    assert isinstance(r, Randomization), r
    assert (r.randomization_number, r.already) == (number, False)
    assert check_label_code(r.label_code) == r.label_code


@then("nothing she is shown names a treatment")
def shown_no_treatment(world: RandomizationWorld) -> None:
    assert [f.name for f in dataclasses.fields(Randomization)] == [
        "participant_id", "randomization_number", "label_code", "already"]
    shown = repr(world.outcome) + repr(world.participants(world.me))
    assert not TREATMENT_WORDS.search(shown), shown


@then(parsers.parse('the list status shows {used:d} of the {sealed:d} envelopes of "{stratum}" '
                    "used"))
def status_of_stratum(world: RandomizationWorld, used: int, sealed: int, stratum: str) -> None:
    usage = world.usage()
    assert usage.pop(stratum) == (sealed, used, sealed - used)
    assert {u[1] for u in usage.values()} == {0}


@then(parsers.parse('she is refused: "{message}"'))
def coordinator_refused(world: RandomizationWorld, message: str) -> None:
    err = world.error(Refused)
    assert (err.message, err.exit_code) == (message, 1)
    assert not isinstance(err, InvalidInput)


@then("no envelope has been used")
def no_envelope_used(world: RandomizationWorld) -> None:
    assert {used for _, used, _ in world.usage().values()} == {0}


@then("she is given the same randomization number and label code as the first time")
def same_answer(world: RandomizationWorld) -> None:
    assert world.first is not None and isinstance(world.outcome, Randomization)
    assert (world.outcome.randomization_number, world.outcome.label_code) == (
        world.first.randomization_number, world.first.label_code)


@then("she is told that no envelope was used")
def told_no_envelope(world: RandomizationWorld) -> None:
    assert world.outcome.already is True


@then(parsers.parse('she is refused, told that the stratum "{stratum}" has no sealed envelope '
                    "left"))
def refused_exhausted(world: RandomizationWorld, stratum: str) -> None:
    err = world.error(Refused)
    assert err.message.startswith(f"stratum {stratum} has no sealed envelope left: ")
    assert err.exit_code == 1


@then(parsers.parse('"{pid}" has no randomization number'))
def no_number(world: RandomizationWorld, pid: str) -> None:
    v = world.participants()[pid]
    assert (v.status, v.randomization_number, v.label_code) == ("consented", None, None)


@then(parsers.parse('the admin sees the stratum "{stratum}" as exhausted'))
def exhausted(world: RandomizationWorld, stratum: str) -> None:
    sealed, used, left = world.usage()[stratum]
    assert sealed == used > 0 and left == 0


@then("no other stratum has used an envelope")
def others_untouched(world: RandomizationWorld) -> None:
    assert sorted(used for _, used, _ in world.usage().values()) == [0, 0, 0, 2]


# --- a changed envelope ------------------------------------------------------------------------


@when(parsers.parse('someone changes one byte of envelope {seq:d} of the "{stratum}" list '
                    "directly in the database"))
def change_envelope(world: RandomizationWorld, seq: int, stratum: str) -> None:
    where = (col(Envelope.stratum_code) == stratum, col(Envelope.seq) == seq)
    with world.engine.begin() as conn:
        ciphertext = conn.execute(select(Envelope.ciphertext).where(*where)).scalar_one()
        changed = bytes([ciphertext[0] ^ 0x80]) + ciphertext[1:]
        conn.execute(update(Envelope).where(*where).values(ciphertext=changed))


@then(parsers.parse('checking the lists fails, naming the "{stratum}" list and its envelope '
                    "{seq:d}"))
def lists_fail(world: RandomizationWorld, stratum: str, seq: int) -> None:
    [bad] = [c for c in world.checks() if c.problem]
    assert (bad.list_id, bad.stratum) == (world.list_id(stratum), stratum)
    assert bad.problem == f"envelope {stratum} #{seq} was changed after sealing"


@then("the other lists are still intact")
def others_intact(world: RandomizationWorld) -> None:
    assert [c.problem is None for c in world.checks()].count(True) == 3


@then(parsers.parse('checking the audit trail fails too, naming the "{stratum}" list'))
def audit_fails(world: RandomizationWorld, stratum: str) -> None:
    with read_only(world.engine) as s:
        report = verification.verify(s)
    assert not report.ok
    assert report.problem is not None
    assert f"list {world.list_id(stratum)} ({stratum})" in report.problem
