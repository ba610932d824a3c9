"""Steps for ``features/audit_checkpoints.feature``: signed checkpoints kept outside the
database catch a truncated or rewritten audit trail and an edited checkpoint. Each scenario
on SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import Engine, select

from tests.conftest import ADMIN, SteppingClock, add_user, sign_in
from tests.db.tampering import EVENTS, attack, delete_event, events, rehash, shift_events
from trialkit.domain.checkpoint import Checkpoint
from trialkit.domain.errors import IntegrityFailure, InvalidInput, TrialkitError
from trialkit.domain.roles import Role
from trialkit.services.integrity import verification
from trialkit.services.integrity.checkpoints import check_checkpoint, write_checkpoint
from trialkit.store.db import read_only, transaction

scenarios("audit_checkpoints.feature")

KEPT = "visit-1.checkpoint.json"


@dataclass
class Audit:
    engine: Engine
    clock: SteppingClock
    kept: Checkpoint | None = None
    brought: Checkpoint | None = None


@pytest.fixture(autouse=True)
def audit(engine: Engine, clock: SteppingClock) -> Audit:
    """Autouse, so that every scenario is collected once per backend."""
    return Audit(engine, clock)


@given(parsers.parse('a trial whose monitor "{name}" has activated her account and work has '
                     'been recorded'))
def trial(audit: Audit, name: str) -> None:
    alice = sign_in(audit.engine, ADMIN, audit.clock)
    for who, role in ((name, Role.MONITOR), ("cora", Role.COORDINATOR), ("iris",
                                                                         Role.INVESTIGATOR)):
        audit.clock.advance(minutes=1)
        add_user(audit.engine, alice, audit.clock, who, role,
                 sites=["TWH"] if role is Role.COORDINATOR else None)


@given(parsers.parse('"{name}" wrote a signed checkpoint, which the auditor keeps outside the '
                     'database'))
def checkpoint(audit: Audit, name: str) -> None:
    audit.clock.advance(minutes=1)
    mona = sign_in(audit.engine, name, audit.clock)
    with transaction(audit.engine) as s:
        audit.kept = write_checkpoint(s, mona, clock=audit.clock)
    audit.brought = audit.kept


def against_checkpoint(audit: Audit) -> None:
    assert audit.brought is not None
    with read_only(audit.engine) as s:
        check_checkpoint(s, audit.brought, KEPT)
        report = verification.verify(s)
    assert report.ok, report.problem


@then(parsers.parse('the trail verifies against the checkpoint, signed by "{name}"'))
def holds(audit: Audit, name: str) -> None:
    against_checkpoint(audit)
    assert audit.kept is not None and audit.kept.signer == name


@when(parsers.parse("someone with write access to the database removes the last {n:d} events"))
def truncate(audit: Audit, n: int) -> None:
    assert audit.kept is not None
    with attack(audit.engine) as conn:
        for seq in range(audit.kept.events, audit.kept.events - n, -1):
            delete_event(conn, seq)


@when("someone with write access to the database deletes event 3, renumbers the rest, "
      "recomputes every hash and adds a forged event at the end")
def rewrite(audit: Audit) -> None:
    assert audit.kept is not None
    with attack(audit.engine) as conn:
        delete_event(conn, 3)
        shift_events(conn, 4, -1)
        forged = events(conn)[-1] | {"seq": audit.kept.events, "reason": "forged",
                                     "hash": "f" * 64}
        conn.execute(EVENTS.insert().values(**forged))
        prev = events(conn)[1]["hash"]
        for row in events(conn)[2:]:
            row["prev_hash"] = prev
            prev = rehash(row)
            conn.execute(EVENTS.update().where(EVENTS.c.seq == row["seq"])
                         .values(prev_hash=row["prev_hash"], hash=prev))


@when("someone lowers the count in the kept checkpoint to match a shortened trail")
def lower_count(audit: Audit) -> None:
    assert audit.kept is not None
    count = audit.kept.events - 2
    with read_only(audit.engine) as s:
        head = s.connection().execute(select(EVENTS.c.hash).where(EVENTS.c.seq == count)
                                      ).scalar_one()
    audit.brought = dataclasses.replace(audit.kept, events=count, head=head)


@when(parsers.parse('the auditor brings a checkpoint that names the trial "{code}"'))
def other_trial(audit: Audit, code: str) -> None:
    assert audit.kept is not None
    audit.brought = dataclasses.replace(audit.kept, trial=code)


@then("the trail alone still verifies")
def still(audit: Audit) -> None:
    with read_only(audit.engine) as s:
        report = verification.verify(s)
    assert report.ok, report.problem


@then("the trail alone fails too: the recomputed events no longer match their authors' "
      "signatures")
def alone(audit: Audit) -> None:
    with read_only(audit.engine) as s:
        report = verification.verify(s)
    assert not report.ok
    assert report.problem is not None and "signature does not match" in report.problem


def failure(audit: Audit, kind: type[TrialkitError]) -> str:
    with pytest.raises(kind) as caught:
        against_checkpoint(audit)
    return caught.value.message


@then(parsers.parse('verifying it against the checkpoint fails: "{words}"'))
def fails(audit: Audit, words: str) -> None:
    message = failure(audit, IntegrityFailure)
    assert message.startswith(f"verification failed: checkpoint {KEPT}: "), message
    assert words in message and "\n" not in message


@then(parsers.parse('the checkpoint is refused as bad input: "{words}"'))
def refused(audit: Audit, words: str) -> None:
    message = failure(audit, InvalidInput)
    assert words in message
