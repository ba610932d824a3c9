"""Steps for ``features/recovery.feature``: `init` writes the recovery sheet once; every list
is sealed to the recovery key too; the sheet restores custody when every custodian is gone
(audited); removing grants or the recovery wrapping is caught by verify. The trial is made
with the real `trialkit init` (in process), on SQLite and, with TRIALKIT_TEST_PG_URL, on
PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import text
from sqlmodel import select
from typer.testing import CliRunner

from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user, sign_in
from tests.db.tampering import rehearse, verify, verify_on
from tests.db.test_custody import STRATA, events, grants, read_out, user
from tests.db.test_recovery import list_key, wrapped_lists
from trialkit.cli.app import app
from trialkit.domain.errors import TrialkitError
from trialkit.domain.recovery import new_recovery_key, recovery_private_key, words_on_sheet
from trialkit.domain.roles import Role
from trialkit.services.administration.custody import recover_custody
from trialkit.services.administration.users import set_disabled
from trialkit.services.integrity.verification import VerifyReport
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AuditEvent

from .test_custody import Custody

scenarios("recovery.feature")


@dataclass
class Recovery(Custody):
    sheet: Path | None = None
    report: VerifyReport | None = None


@pytest.fixture(autouse=True)
def world(db_url: str, clock: SteppingClock, tmp_path: Path) -> Iterator[Recovery]:
    """Autouse, so that every scenario is collected once per backend."""
    sheet = tmp_path / "recovery-sheet.txt"
    done = CliRunner().invoke(
        app,
        ["--db", db_url, "init", str(KETHEAD), "--admin", ADMIN, "--training",
         "--recovery-sheet", str(sheet)],
        env={"TRIALKIT_NEW_PASSWORD": PASSWORD, "TRIALKIT_DB": None, "TRIALKIT_USER": None,
             "TRIALKIT_CLOCK": clock.now().isoformat()},
    )
    assert done.exit_code == 0, done.output
    engine = make_engine(db_url)
    yield Recovery(engine, clock, sheet=sheet)
    engine.dispose()


def words(world: Recovery) -> str:
    assert world.sheet is not None
    return words_on_sheet(world.sheet.read_text(encoding="utf-8"))


@given(parsers.parse('the admin "{admin}" created the trial, which wrote the recovery sheet '
                     "to a file for the sponsor's safe"))
def created(world: Recovery, admin: str) -> None:
    assert admin == ADMIN and world.sheet is not None and world.sheet.exists()
    assert world.sheet.stat().st_mode & 0o077 == 0  # readable by its owner only


@given(parsers.parse('the pharmacist "{phil}" was approved by the investigator "{iris}" and '
                     "the allocation lists are sealed"))
def phil_approved_and_sealed(world: Recovery, phil: str, iris: str) -> None:
    admin = sign_in(world.engine, ADMIN, world.clock)
    add_user(world.engine, admin, world.clock, iris, Role.INVESTIGATOR)
    add_user(world.engine, admin, world.clock, phil, Role.PHARMACIST, approve=False)
    world.approve(iris, phil)
    world.seal()


@given(parsers.parse('"{name}" has left the trial and the admin disabled his account'))
def left(world: Recovery, name: str) -> None:
    admin = sign_in(world.engine, ADMIN, world.clock)
    with transaction(world.engine) as s:
        set_disabled(s, admin, name=name, disabled=True, reason="left the trial",
                     clock=world.clock)


@given(parsers.parse('the new pharmacist "{newt}" activated his account'))
def newt_activated(world: Recovery, newt: str) -> None:
    admin = sign_in(world.engine, ADMIN, world.clock)
    add_user(world.engine, admin, world.clock, newt, Role.PHARMACIST, approve=False)
    assert grants(world.engine, newt) == 0


@when(parsers.parse('the investigator "{iris}" tries to approve "{newt}" on her word alone'))
def word_alone(world: Recovery, iris: str, newt: str) -> None:
    world.attempt(lambda: world.approve(iris, newt))


@when(parsers.parse('"{who}" restores custody to "{name}" with the recovery sheet, after '
                    "checking the key fingerprint he reads out"))
def restores(world: Recovery, who: str, name: str) -> None:
    actor = sign_in(world.engine, who, world.clock)
    with transaction(world.engine) as s:
        recover_custody(s, actor, name=name, fingerprint=read_out(world.engine, name),
                        words=words(world), clock=world.clock)


@when(parsers.parse('"{who}" tries to restore custody to "{name}" with the recovery sheet of '
                    "another trial"))
def restores_with_another(world: Recovery, who: str, name: str) -> None:
    actor = sign_in(world.engine, who, world.clock)

    def attempt() -> None:
        with transaction(world.engine) as s:
            recover_custody(s, actor, name=name, fingerprint=read_out(world.engine, name),
                            words=new_recovery_key().words, clock=world.clock)

    world.attempt(attempt)


@when(parsers.re(r"someone with write access to the database file (?P<removes>.+)"))
def tampers(world: Recovery, removes: str) -> None:
    statements = {
        "deletes every list key grant": "DELETE FROM list_key_grant",
        "deletes the recovery wrapping of one list":
            "UPDATE allocation_list SET recovery_key = NULL WHERE stratum_code = 'TWH-CM'",
    }
    with rehearse(world.engine) as conn:
        conn.execute(text(statements[removes]))
        world.report = verify_on(conn)


@then("the recovery sheet lists 24 numbered words")
def numbered(world: Recovery) -> None:
    assert world.sheet is not None
    found = re.findall(r"\b(\d{1,2})\. ([a-z]+)\b", world.sheet.read_text(encoding="utf-8"))
    assert sorted(int(n) for n, _w in found) == list(range(1, 25))


@then("the words on the sheet open every allocation list")
def sheet_opens(world: Recovery) -> None:
    key = recovery_private_key(words(world))
    segments = wrapped_lists(world.engine)
    assert len(segments) == STRATA
    for list_id, wrapped in segments:
        assert wrapped is not None and len(list_key(wrapped, key, list_id)) == 32


@then("the words appear nowhere in the trial database")
def nowhere(world: Recovery) -> None:
    phrase = words(world)
    with read_only(world.engine) as s:
        for column in ("before_json", "after_json", "reason"):
            for value in s.exec(select(getattr(AuditEvent, column))):
                assert phrase not in (value or "")


@then(parsers.parse('"{name}" is approved with the recovery sheet and holds the key of every '
                    "list"))
def approved_by_sheet(world: Recovery, name: str) -> None:
    assert user(world.engine, name).custodian_approved_by == "iris with the recovery sheet"
    assert grants(world.engine, name) == STRATA


@then(parsers.parse('the audit trail shows that "{who}" restored custody to "{name}" with the '
                    "recovery sheet"))
def recorded(world: Recovery, who: str, name: str) -> None:
    [event] = events(world.engine, "custody.recover")
    assert (event.user_name, event.entity_id) == (who, name)


@then("the audit trail verifies")
def verifies(world: Recovery) -> None:
    report = verify(world.engine)
    assert report.ok, report.problem


@then(parsers.parse('"{who}" is refused: "{why}"'))
def refused(world: Recovery, who: str, why: str) -> None:
    error = world.error
    assert isinstance(error, TrialkitError) and error.exit_code == 1
    assert why in error.message


@then(parsers.parse('"{name}" is still not approved and holds no list key, and the audit trail '
                    "shows the refused attempt"))
def still_none(world: Recovery, name: str) -> None:
    assert user(world.engine, name).custodian_approved_at is None
    assert grants(world.engine, name) == 0
    [refusal] = events(world.engine, "custody.recover.refused")
    assert refusal.entity_id == name


@then(parsers.re(r"the audit trail verification fails, naming (?P<what>.+)"))
def verification_fails(world: Recovery, what: str) -> None:
    report = world.report
    assert report is not None and not report.ok
    expected = {"a list no custodian can open": "no custodian holds its key",
                "the missing recovery wrapping": "(TWH-CM): its recovery wrapping is missing"}
    assert expected[what.strip()] in (report.problem or ""), report.problem
