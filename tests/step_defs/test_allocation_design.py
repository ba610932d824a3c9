"""Steps for ``features/allocation_design.feature``: whole blocks under extensions, the
protocol's block sizes binding, the sealed procedure opened after the lock, and a trial
that does not stratify by site. On SQLite and PostgreSQL (the ``db_url`` fixture), through
the services the command line and the terminal UI call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlmodel import col, select

from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock
from tests.step_defs.test_randomization import RandomizationWorld
from trialkit.domain.errors import InvalidInput, PermissionDenied
from trialkit.domain.protocol import protocol_from_text
from trialkit.domain.roles import Role
from trialkit.domain.sealing import (
    CustodianKeys,
    open_envelope,
    parse_envelope_plaintext,
    unwrap_data_key,
    unwrap_private_key,
)
from trialkit.services.administration.database_lock import lock_database
from trialkit.services.administration.setup import initialize
from trialkit.services.enrolment.allocation import extend_list, key_info, seal_lists
from trialkit.services.enrolment.participants import randomize
from trialkit.services.exports.sealed_procedure import SegmentProcedure, open_procedures
from trialkit.services.integrity import verification
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AuditEvent, Envelope, ListKeyGrant, User

scenarios("allocation_design.feature")


class DesignWorld(RandomizationWorld):
    def create_trial_without_site_strata(self) -> None:
        text = Path(KETHEAD).read_text(encoding="utf-8")
        assert "stratify_by_site = true" in text
        loaded = protocol_from_text(
            text.replace("stratify_by_site = true", "stratify_by_site = false"), "no-site.toml")
        self._engine = make_engine(self.db_url, must_exist=False)
        initialize(self._engine, loaded, admin=ADMIN, admin_password=PASSWORD,
                   training=False, clock=self.clock)

    def arms(self, stratum: str, holder: str = "phil") -> list[str]:
        """Every envelope of the stratum as its custodian reads it, in sequence order."""
        with read_only(self.engine) as s:
            user = s.exec(select(User).where(User.name == holder)).one()
            assert user.public_key and user.wrapped_private_key and user.key_kdf
            private = unwrap_private_key(
                CustodianKeys(user.public_key, user.wrapped_private_key, user.key_kdf), PASSWORD)
            rows = s.exec(select(Envelope).where(Envelope.stratum_code == stratum)
                          .order_by(col(Envelope.seq))).all()
            keys: dict[str, bytes] = {}
            arms = []
            for e in rows:
                if e.list_id not in keys:
                    grant = s.get(ListKeyGrant, (e.list_id, user.id))
                    assert grant is not None
                    keys[e.list_id] = unwrap_data_key(grant.wrapped_key, private,
                                                      key_info(e.list_id))
                plain = open_envelope(keys[e.list_id], e.ciphertext, e.list_id, stratum, e.seq)
                arms.append(parse_envelope_plaintext(plain).arm_code)
        return arms


@pytest.fixture(autouse=True)
def world(db_url: str, clock: SteppingClock) -> Iterator[DesignWorld]:
    w = DesignWorld(db_url=db_url, clock=clock)
    yield w
    w.close()


@given(parsers.parse('the KetHead trial is running with the pharmacist "{name}"'))
def trial_with_pharmacist(world: DesignWorld, name: str) -> None:
    world.create_trial()
    world.add(name, Role.PHARMACIST)


@given(parsers.parse('a KetHead trial that does not stratify by site, with the pharmacist '
                     '"{name}"'))
def trial_without_site_strata(world: DesignWorld, name: str) -> None:
    world.create_trial_without_site_strata()
    world.add(name, Role.PHARMACIST)


@given(parsers.parse('the coordinators "{a}" at "{site_a}" and "{b}" at "{site_b}"'))
def two_coordinators(world: DesignWorld, a: str, site_a: str, b: str, site_b: str) -> None:
    world.add(a, Role.COORDINATOR, [site_a])
    world.add(b, Role.COORDINATOR, [site_b])


@given(parsers.parse("the admin has sealed {count:d} envelopes for each stratum"))
def has_sealed(world: DesignWorld, count: int) -> None:
    world.seal(count)


@given(parsers.parse('the investigator "{name}" has locked the database'))
def locked(world: DesignWorld, name: str) -> None:
    world.add(name, Role.INVESTIGATOR)
    with transaction(world.engine) as s:
        lock_database(s, world.actor(name), clock=world.clock)


@when(parsers.parse("the admin seals {count:d} envelopes for each stratum"))
def seals(world: DesignWorld, count: int) -> None:
    world.attempt(lambda: world.seal(count))


@when(parsers.parse('the admin seals {count:d} envelopes for each stratum with block sizes '
                    '"{sizes}"'))
def seals_with_sizes(world: DesignWorld, count: int, sizes: str) -> None:
    def act() -> object:
        with transaction(world.engine) as s:
            return seal_lists(s, world.actor(ADMIN), per_stratum=count, clock=world.clock,
                              block_sizes=[int(x) for x in sizes.split(",")])
    world.attempt(act)


def _extend(world: DesignWorld, stratum: str, count: int, sizes: list[int] | None) -> object:
    with transaction(world.engine) as s:
        return extend_list(s, world.actor(ADMIN), stratum=stratum, count=count,
                           block_sizes=sizes, clock=world.clock)


@when(parsers.parse('the admin extends "{stratum}" by {count:d} envelopes, ten times'))
def extends_ten_times(world: DesignWorld, stratum: str, count: int) -> None:
    for _ in range(10):
        _extend(world, stratum, count, None)


@when(parsers.parse('the admin extends "{stratum}" by {count:d} envelopes with block sizes '
                    '"{sizes}"'))
def extends_with_sizes(world: DesignWorld, stratum: str, count: int, sizes: str) -> None:
    world.attempt(lambda: _extend(world, stratum, count, [int(x) for x in sizes.split(",")]))


@then(parsers.parse('the admin is shown {count:d} envelopes for each of the strata "{strata}"'))
def shown_counts(world: DesignWorld, count: int, strata: str) -> None:
    assert [(c.stratum, c.envelopes) for c in world.outcome.lists] == [
        (s.strip(), count) for s in strata.split(",")]


@then(parsers.parse('the list status shows {used:d} of the {sealed:d} envelopes of "{stratum}" '
                    "used"))
def status_of_stratum(world: DesignWorld, used: int, sealed: int, stratum: str) -> None:
    usage = world.usage()
    assert usage.pop(stratum) == (sealed, used, sealed - used)
    assert {u[1] for u in usage.values()} == {0}


@then(parsers.parse('the list status shows {n:d} envelopes of "{stratum}" released, and '
                    '{others:d} in every other stratum'))
def released_counts(world: DesignWorld, n: int, stratum: str, others: int) -> None:
    usage = world.usage()
    assert usage.pop(stratum) == (n, 0, n)
    assert set(usage.values()) == {(others, 0, others)}


@then(parsers.parse('the pharmacist, reading every envelope of "{stratum}" in order, never '
                    'finds one arm more than {bound:d} ahead of the other'))
def balanced(world: DesignWorld, stratum: str, bound: int) -> None:
    running, worst = 0, 0
    arms = world.arms(stratum)
    assert len(arms) >= 43
    for arm in arms:
        running += 1 if arm == "KET" else -1
        worst = max(worst, abs(running))
    assert worst <= bound and running == 0, arms


@then("checking the lists finds every list intact")
def all_intact(world: DesignWorld) -> None:
    checks = world.checks()
    assert len(checks) == 4 + 10 and all(c.problem is None for c in checks)


@then(parsers.parse('the admin is told the block sizes differ from the protocol\'s "{sizes}"'))
def told_sizes(world: DesignWorld, sizes: str) -> None:
    err = world.error(InvalidInput)
    assert err.exit_code == 2
    assert f"differ from the protocol's ({sizes})" in err.message


@then("nothing is sealed")
def nothing_sealed(world: DesignWorld) -> None:
    assert {u for u in world.usage().values()} == {(0, 0, 0)}
    assert world.checks() == []


@when(parsers.parse('the pharmacist "{name}" opens the sealed procedure with her password'))
def opens_procedure(world: DesignWorld, name: str) -> None:
    def act() -> list[SegmentProcedure]:
        with transaction(world.engine) as s:
            return open_procedures(s, world.actor(name), password=PASSWORD, clock=world.clock)
    world.attempt(act)


@then("she sees, for every stratum, blocks of 4 or 6 that follow one another from envelope 1 "
      "to the last")
def sees_blocks(world: DesignWorld) -> None:
    segments = world.outcome
    assert isinstance(segments, list) and len(segments) == 4
    for g in segments:
        assert g.procedure["block_sizes"] == [4, 6]
        assert {b.size for b in g.blocks} <= {4, 6}
        starts = [b.first_seq for b in g.blocks]
        ends = [b.last_seq for b in g.blocks]
        assert starts[0] == 1 and starts[1:] == [e + 1 for e in ends[:-1]]
        assert ends[-1] == len(world.arms(g.stratum)) >= 5


@then("every block she sees holds as many envelopes of each arm")
def blocks_balanced(world: DesignWorld) -> None:
    for g in world.outcome:
        arms = world.arms(g.stratum)
        for b in g.blocks:
            block = arms[b.first_seq - 1 : b.last_seq]
            assert block.count("KET") == block.count("PLA") == b.size // 2


@then(parsers.parse('the audit trail records that "{name}" opened the sealed procedure'))
def audited_open(world: DesignWorld, name: str) -> None:
    with read_only(world.engine) as s:
        names = s.exec(select(AuditEvent.user_name)
                       .where(AuditEvent.action == "procedure.open")).all()
    assert list(names) == [name]


@then("she is refused because the database is not locked yet")
def refused_unlocked(world: DesignWorld) -> None:
    err = world.error(PermissionDenied)
    assert err.exit_code == 1 and "not locked yet" in err.message


@then("the audit trail records the refusal")
def audited_refusal(world: DesignWorld) -> None:
    with read_only(world.engine) as s:
        reasons = s.exec(select(AuditEvent.reason)
                         .where(AuditEvent.action == "procedure.refused")).all()
    assert len(reasons) == 1 and "not locked" in (reasons[0] or "")


@when(parsers.parse('"{a}" randomizes a participant with chronic migraine at "{site_a}" and '
                    '"{b}" one at "{site_b}"'))
def two_randomize(world: DesignWorld, a: str, site_a: str, b: str, site_b: str) -> None:
    numbers = []
    for who, site in ((a, site_a), (b, site_b)):
        world.me = who
        pid = world.ready(site)
        with transaction(world.engine) as s:
            numbers.append(randomize(s, world.actor(who), pid, clock=world.clock))
    world.outcome = numbers


@then(parsers.parse('they are given the randomization numbers "{first}" and "{second}"'))
def given_numbers(world: DesignWorld, first: str, second: str) -> None:
    assert [r.randomization_number for r in world.outcome] == [first, second]


@then(parsers.parse('the pharmacist "{name}" opens both envelopes, numbers 1 and 2 of the '
                    '"{stratum}" list'))
def pharmacist_opens(world: DesignWorld, name: str, stratum: str) -> None:
    opened = []
    for r in world.outcome:
        with transaction(world.engine) as s:
            opened.append(dispense(s, world.actor(name), r.participant_id, password=PASSWORD,
                                   clock=world.clock).envelope)
    assert opened == [f"{stratum} #1", f"{stratum} #2"]


@then("checking the lists and the audit trail finds them intact")
def lists_and_audit_intact(world: DesignWorld) -> None:
    assert [c.problem for c in world.checks()] == [None, None]
    with read_only(world.engine) as s:
        report = verification.verify(s)
    assert report.ok, report.problem
    with read_only(world.engine) as s:
        after = s.exec(select(AuditEvent.after_json)
                       .where(AuditEvent.action == "list.seal")).first()
    assert after is not None and json.loads(after)["released"] == 4

