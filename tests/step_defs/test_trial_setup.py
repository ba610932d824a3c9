"""Steps for ``features/trial_setup.feature``: creating the trial, signing in, lockout and
tamper detection. Every scenario runs on SQLite and, with TRIALKIT_TEST_PG_URL, on
PostgreSQL (the ``db_url`` fixture); the admin's and the monitor's commands go through the
real ``trialkit`` entry point in a subprocess, everything else through the services."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from tests.conftest import PASSWORD, ROOT, SteppingClock, add_user, sign_in
from trialkit.domain.errors import AccountLocked, AuthenticationFailed, TrialkitError
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.trial import get_trial, trial_info
from trialkit.services.administration.users import list_users
from trialkit.services.integrity.audit import LogEntry, log
from trialkit.services.integrity.verification import verify
from trialkit.store.db import make_engine, normalize_url, read_only, sqlite_path
from trialkit.store.models import AuditEvent

scenarios("trial_setup.feature")

KETHEAD_FILE = "protocols/kethead.toml"
WRONG_PASSWORD = "not-the-right-password"
CLI_TIMEOUT_S = 120


@dataclass
class TrialWorld:
    """What one scenario knows: its database, its clock, and what happened so far."""

    db_url: str
    clock: SteppingClock
    workdir: Path
    cli: subprocess.CompletedProcess[str] | None = None
    admin: Actor | None = None
    actor: Actor | None = None
    attempts: list[TrialkitError] = field(default_factory=list)
    refusal: DBAPIError | None = None
    event_seq: int | None = None
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The trial database; opened only once a step needs it (after the trial exists)."""
        if self._engine is None:
            self._engine = make_engine(self.db_url)
        return self._engine

    def new_database(self) -> Engine:
        """An engine that may create the database (a SQLite file not there yet)."""
        assert self._engine is None, "the database is already open"
        self._engine = make_engine(self.db_url, must_exist=False)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def last_cli(self) -> subprocess.CompletedProcess[str]:
        assert self.cli is not None, "no trialkit command has run in this scenario"
        return self.cli

    def signed_in_admin(self) -> Actor:
        assert self.admin is not None, "the admin has not signed in in this scenario"
        return self.admin


@pytest.fixture(autouse=True)
def world(db_url: str, clock: SteppingClock, tmp_path: Path) -> Iterator[TrialWorld]:
    """Autouse, so that every scenario is collected once per backend of ``db_url``."""
    w = TrialWorld(db_url=db_url, clock=clock, workdir=tmp_path)
    yield w
    w.close()


def run_trialkit(*args: str, cwd: Path, env: dict[str, str] | None = None) -> (
    subprocess.CompletedProcess[str]
):
    """Run the installed entry point as a user would, with no TRIALKIT_* leaking in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "trialkit", *args],
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def table_names(db_url: str) -> list[str]:
    """Tables in the scenario's database (a SQLite file not yet created has none)."""
    url = normalize_url(db_url)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return []
    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def attempt_sign_in(world: TrialWorld, name: str, password: str) -> Actor | TrialkitError:
    try:
        return sign_in(world.engine, name, world.clock, password)
    except TrialkitError as err:
        return err


def audit_entries(world: TrialWorld, *, action: str, user: str | None = None) -> list[LogEntry]:
    """Audit events as the admin reads them."""
    with read_only(world.engine) as s:
        return log(s, world.signed_in_admin(), action=action, user=user)


def only_event_seq(world: TrialWorld, *, action: str, entity_id: str) -> int:
    """The sequence number of the one audit event with this action on this entity."""
    with read_only(world.engine) as s:
        seqs = s.exec(
            select(AuditEvent.seq)
            .where(AuditEvent.action == action)
            .where(AuditEvent.entity_id == entity_id)
            .order_by(col(AuditEvent.seq))
        ).all()
    assert len(seqs) == 1, f"expected one {action} event for {entity_id}, found {seqs}"
    return seqs[0]


def get_past_the_guard(conn: Connection) -> None:
    """What someone with the database owner's rights could do to make the audit trail
    writable: the append-only triggers are the only thing stopping an UPDATE or DELETE."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
    else:
        conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(text("DROP TRIGGER audit_event_no_delete"))


def replace_once(old: str, new: str) -> Callable[[str], str]:
    def edit(protocol_text: str) -> str:
        assert protocol_text.count(old) == 1, f"the KetHead file no longer holds {old!r} once"
        return protocol_text.replace(old, new)

    return edit


def remove_line(start: str) -> Callable[[str], str]:
    def edit(protocol_text: str) -> str:
        lines = protocol_text.splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith(start)]
        assert len(kept) == len(lines) - 1, f"the KetHead file has no single line {start!r}"
        return "".join(kept)

    return edit


# How each mistake in the feature's examples is made in a copy of the KetHead file.
MISTAKES: dict[str, Callable[[str], str]] = {
    "the Sinai site's recruitment target is 0": replace_once(
        'name = "Sinai Health System"\ntarget = 28', 'name = "Sinai Health System"\ntarget = 0'
    ),
    "the block sizes are 4 and 5": replace_once("block_sizes = [4, 6]", "block_sizes = [4, 5]"),
    "the trial has no title": remove_line('title = "A multi-centre randomized'),
    "no outcome window is marked primary": replace_once("primary = true\n", ""),
}


# --- Rule: the admin creates the trial ------------------------------------------------------


@given("an empty trial database")
def empty_database(world: TrialWorld) -> None:
    assert table_names(world.db_url) == []


@given(parsers.parse('a draft protocol file "{name}" in which {mistake}'))
def draft_protocol(world: TrialWorld, name: str, mistake: str) -> None:
    original = (ROOT / KETHEAD_FILE).read_text(encoding="utf-8")
    (world.workdir / name).write_text(MISTAKES[mistake](original), encoding="utf-8")


@when(parsers.parse('the admin "{admin}" creates the trial from the protocol file "{protocol}"'))
def admin_runs_init(world: TrialWorld, admin: str, protocol: str) -> None:
    # The file is named as the admin would type it, relative to where they stand.
    cwd = world.workdir if (world.workdir / protocol).exists() else ROOT
    world.cli = run_trialkit(
        "--db", world.db_url, "init", protocol, "--admin", admin,
        "--recovery-sheet", str(world.workdir / f"recovery-sheet-{uuid.uuid4().hex}.pdf"),
        cwd=cwd, env={"TRIALKIT_NEW_PASSWORD": PASSWORD},
    )
    # A live trial created now goes on now: the scenario's clock must not run behind the
    # real one the command used (verify reports events that go back in time).
    world.clock.at = max(world.clock.at, datetime.now(UTC) + timedelta(seconds=1))


@then(parsers.parse('the trial "{code}", protocol version "{version}", is set up with the '
                    'sites "{sites}"'))
def trial_is_set_up(world: TrialWorld, code: str, version: str, sites: str) -> None:
    result = world.last_cli()
    assert result.returncode == 0, result.stderr
    assert f"Created trial {code}" in result.stdout
    with read_only(world.engine) as s:
        info = trial_info(s)
    assert (info.trial_code, info.protocol_version, info.training) == (code, version, False)
    assert {site.code for site in info.sites} == {c.strip() for c in sites.split(",")}


@then("the trial keeps the fingerprint of the protocol file it was created from")
def trial_keeps_fingerprint(world: TrialWorld) -> None:
    data = (ROOT / KETHEAD_FILE).read_bytes()
    with read_only(world.engine) as s:
        kept = (get_trial(s).protocol_sha256, get_trial(s).protocol_text)
    assert kept == (hashlib.sha256(data).hexdigest(), data.decode("utf-8"))


@then(parsers.parse('"{name}" can sign in as the trial admin'))
def admin_signs_in(world: TrialWorld, name: str) -> None:
    world.admin = sign_in(world.engine, name, world.clock)
    assert world.admin.role is Role.ADMIN


@then(parsers.parse('the audit trail shows the trial was created from "{protocol}"'))
def audit_shows_creation(world: TrialWorld, protocol: str) -> None:
    [created] = audit_entries(world, action="trial.create")
    assert created.reason == f"created from {protocol}"


@then(parsers.parse('the audit trail shows "{admin}" created the trial and her own account'))
def audit_names_the_creator(world: TrialWorld, admin: str) -> None:
    [created] = audit_entries(world, action="trial.create")
    [account] = audit_entries(world, action="user.add")
    assert (created.user, created.role) == (admin, "admin")
    assert (account.user, account.entity_id) == (admin, admin)


@then("the admin is told the input is wrong, in one line and without a traceback")
def told_input_is_wrong(world: TrialWorld) -> None:
    result = world.last_cli()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""


@then(parsers.parse('the message names the file "{name}", the field "{fld}" and says '
                    '"{problem}"'))
def message_names_file_and_field(world: TrialWorld, name: str, fld: str, problem: str) -> None:
    message = world.last_cli().stderr.strip()
    assert message.startswith(f"Error: {name}: {fld}: "), message
    assert problem in message.removeprefix(f"Error: {name}: {fld}: "), message


@then("the trial database is left empty")
def database_left_empty(world: TrialWorld) -> None:
    assert table_names(world.db_url) == []


# --- Rule: signing in and lockout -------------------------------------------------------------


@given(parsers.parse('the KetHead trial has been created by the admin "{admin}"'))
def trial_created(world: TrialWorld, admin: str) -> None:
    engine = world.new_database()
    initialize(engine, load_protocol(ROOT / KETHEAD_FILE), admin=admin, admin_password=PASSWORD,
               training=False, clock=world.clock)
    world.admin = sign_in(engine, admin, world.clock)


@given(parsers.parse('the admin has added the coordinator "{name}" at the site "{site}"'))
def coordinator_added(world: TrialWorld, name: str, site: str) -> None:
    add_user(world.engine, world.signed_in_admin(), world.clock, name, Role.COORDINATOR,
             sites=[site])


@given(parsers.parse('"{name}" has signed in'))
@when(parsers.parse('"{name}" signs in with her password'))
def signs_in(world: TrialWorld, name: str) -> None:
    world.actor = sign_in(world.engine, name, world.clock)


@then(parsers.parse('she is signed in as a coordinator of the site "{site}" only'))
def signed_in_as_coordinator(world: TrialWorld, site: str) -> None:
    assert world.actor is not None
    assert world.actor.role is Role.COORDINATOR
    assert world.actor.sites == frozenset({site})
    assert not world.actor.custodian


@then(parsers.parse('the audit trail shows that "{name}" signed in'))
def audit_shows_sign_in(world: TrialWorld, name: str) -> None:
    [entry] = audit_entries(world, user=name, action="login")
    assert (entry.action, entry.role, entry.entity_id) == ("login", "coordinator", name)
    assert entry.at == world.clock.now()


@when(parsers.parse('"{name}" signs in with a wrong password {times:d} times'))
def wrong_passwords(world: TrialWorld, name: str, times: int) -> None:
    world.attempts = []
    for _ in range(times):
        outcome = attempt_sign_in(world, name, WRONG_PASSWORD)
        assert isinstance(outcome, TrialkitError), "a wrong password was accepted"
        world.attempts.append(outcome)


@when(parsers.parse('"{name}" signs in with a wrong password once more'))
def one_more_wrong_password(world: TrialWorld, name: str) -> None:
    wrong_passwords(world, name, 1)


@then(parsers.parse('each of those attempts is refused with "{message}"'))
def each_attempt_refused(world: TrialWorld, message: str) -> None:
    assert world.attempts
    for err in world.attempts:
        assert isinstance(err, AuthenticationFailed) and not isinstance(err, AccountLocked), err
        assert err.message == message
        assert err.exit_code == 1


@then(parsers.parse('"{name}" is told to wait {seconds:d} s even with her right password'))
def right_password_must_wait(world: TrialWorld, name: str, seconds: int) -> None:
    outcome = attempt_sign_in(world, name, PASSWORD)
    assert isinstance(outcome, AccountLocked), outcome
    assert outcome.message == (
        f"too many wrong passwords for {name!r}: wait {seconds} s and try again"
    )


@then(parsers.parse('the admin sees the account of "{name}" as waiting'))
def admin_sees_waiting(world: TrialWorld, name: str) -> None:
    with read_only(world.engine) as s:
        users = list_users(s, world.signed_in_admin(), clock=world.clock)
        [view] = [u for u in users if u.name == name]
    assert view.locked and not view.disabled


@when(parsers.parse("{seconds:d} second has passed"))
def seconds_pass(world: TrialWorld, seconds: int) -> None:
    world.clock.advance(seconds=seconds)


@then(parsers.parse('"{name}" can sign in with her right password again'))
def can_sign_in_again(world: TrialWorld, name: str) -> None:
    outcome = attempt_sign_in(world, name, PASSWORD)
    assert isinstance(outcome, Actor), outcome
    assert outcome.name == name


@then("the audit trail verifies")
def audit_trail_verifies(world: TrialWorld) -> None:
    with read_only(world.engine) as s:
        report = verify(s)
    assert report.ok, report.problem


# --- Rule: tampering is detected ------------------------------------------------------------


@given("checking the audit trail from the command line says it is OK")
@then("checking the audit trail from the command line says it is OK")
def cli_verify_ok(world: TrialWorld) -> None:
    world.cli = run_trialkit("--db", world.db_url, "audit", "verify", cwd=world.workdir)
    assert world.cli.returncode == 0, world.cli.stderr
    assert world.cli.stdout.startswith("OK: "), world.cli.stdout


@when(parsers.parse('someone tries to edit the sign-in of "{name}" in the audit trail directly '
                    "in the database"))
def plain_edit(world: TrialWorld, name: str) -> None:
    seq = only_event_seq(world, action="login", entity_id=name)
    try:
        with world.engine.begin() as conn:
            conn.execute(text("UPDATE audit_event SET user_name = 'x' WHERE seq = :seq"),
                         {"seq": seq})
    except DBAPIError as err:
        world.refusal = err


@then("the database refuses the edit")
def database_refuses(world: TrialWorld) -> None:
    assert world.refusal is not None, "the database let the audit trail be edited"
    assert "append-only" in str(world.refusal.orig)


@when(parsers.parse("someone gets past the database's guard and makes the sign-in of \"{name}\" "
                    'look like "{other}" signed in'))
def tamper_edit(world: TrialWorld, name: str, other: str) -> None:
    world.event_seq = only_event_seq(world, action="login", entity_id=name)
    with world.engine.begin() as conn:
        get_past_the_guard(conn)
        changed = conn.execute(
            text("UPDATE audit_event SET user_name = :other WHERE seq = :seq"),
            {"other": other, "seq": world.event_seq},
        )
        assert changed.rowcount == 1


@when(parsers.parse("someone gets past the database's guard and deletes the event that records "
                    '"{name}" being added'))
def tamper_delete(world: TrialWorld, name: str) -> None:
    world.event_seq = only_event_seq(world, action="user.add", entity_id=name)
    with world.engine.begin() as conn:
        get_past_the_guard(conn)
        gone = conn.execute(text("DELETE FROM audit_event WHERE seq = :seq"),
                            {"seq": world.event_seq})
        assert gone.rowcount == 1


@then("checking the audit trail from the command line is refused")
def cli_verify_refused(world: TrialWorld) -> None:
    world.cli = run_trialkit("--db", world.db_url, "audit", "verify", cwd=world.workdir)
    assert world.cli.returncode == 1, (world.cli.returncode, world.cli.stdout, world.cli.stderr)
    assert "Traceback" not in world.cli.stderr
    assert len(world.cli.stderr.strip().splitlines()) == 1, world.cli.stderr


@then(parsers.parse('the message names that event and says "{problem}"'))
def message_names_event(world: TrialWorld, problem: str) -> None:
    message = world.last_cli().stderr.strip()
    assert message.startswith("Refused: "), message
    assert f" event {world.event_seq}: {problem}" in message, message
