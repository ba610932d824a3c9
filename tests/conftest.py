"""Shared fixtures: every store and service test runs on SQLite and, when
TRIALKIT_TEST_PG_URL is set, on PostgreSQL too (each test in its own schema)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session, col, select

from trialkit.domain.clock import Clock
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.custody import approve_custodian, approved_custodians
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import actor_for, login, unlock_signing_key
from trialkit.services.administration.users import activate_user, create_user
from trialkit.store.db import make_engine, normalize_url, transaction
from trialkit.store.models import User

ROOT = Path(__file__).resolve().parents[1]
KETHEAD = ROOT / "protocols" / "kethead.toml"
PG_URL = os.environ.get("TRIALKIT_TEST_PG_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])

ADMIN = "alice"
PASSWORD = "correct-horse-battery"


# The catalogs that creating and dropping a schema per test fills with dead rows.
CATALOGS = ("pg_class", "pg_attribute", "pg_depend", "pg_type", "pg_constraint", "pg_index",
            "pg_attrdef", "pg_trigger", "pg_namespace", "pg_sequence")


def _vacuum_catalogs() -> None:
    assert PG_URL is not None
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("VACUUM " + ", ".join(f"pg_catalog.{c}" for c in CATALOGS)))
    finally:
        admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def tidy_postgres_catalogs() -> Iterator[None]:
    """Every PostgreSQL test creates and drops a schema. On a server without autovacuum
    (this machine's and CI's) the catalogs fill with dead rows and every later connection
    and DDL slows down: a full run took twice as long on a server that had run it once
    before. Vacuum them before and after each session (each xdist worker does)."""
    if PG_URL is None:
        yield
        return
    _vacuum_catalogs()
    yield
    _vacuum_catalogs()


@pytest.fixture(autouse=True)
def labels_never_in_the_checkout(tmp_path_factory: pytest.TempPathFactory,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that prints labels without naming a file (the coordinator's day has the
    pharmacist prepare) writes them to a folder of its own, never into the current folder
    (a labels-TWH-001.pdf was once committed that way). Tests of the folder rules set or
    unset TRIALKIT_LABEL_DIR themselves."""
    monkeypatch.setenv("TRIALKIT_LABEL_DIR", str(tmp_path_factory.mktemp("labels")))


@dataclass
class SteppingClock:
    """A clock tests can move forward."""

    at: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.at

    def advance(self, **kwargs: float) -> None:
        self.at += timedelta(**kwargs)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


def pg_schema_url(schema: str) -> str:
    assert PG_URL is not None
    base = normalize_url(PG_URL)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def empty_database(backend: str, folder: Path, name: str = "trial.db") -> Iterator[str]:
    """The URL of an empty database: a SQLite file ``name`` in ``folder``, or a fresh schema
    on the test PostgreSQL server, dropped afterwards (autovacuum is off there)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / name}"
        return
    if PG_URL is None:
        pytest.skip("PostgreSQL-only test: set TRIALKIT_TEST_PG_URL (CI does)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    owner = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield pg_schema_url(schema)
    finally:
        with owner.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        owner.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str, clock: SteppingClock) -> Iterator[Engine]:
    """A database holding the KetHead trial and its first admin (alice)."""
    eng = make_engine(db_url, must_exist=False)
    initialize(
        eng, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
        training=False, clock=clock,
    )
    yield eng
    eng.dispose()


def sign_in(engine: Engine, name: str, clock: SteppingClock, password: str = PASSWORD) -> Actor:
    with transaction(engine) as s:
        return login(s, name, password, clock=clock)


@pytest.fixture
def admin(engine: Engine, clock: SteppingClock) -> Actor:
    return sign_in(engine, ADMIN, clock)


def add_user(
    engine: Engine,
    admin: Actor,
    clock: SteppingClock,
    name: str,
    role: Role,
    *,
    sites: list[str] | None = None,
    custodian: bool = False,
    password: str = PASSWORD,
    approve: bool = True,
) -> None:
    """Add a user as an admin does and activate the account as its owner does (the
    enrolment code handed over, the owner's own password and keys); a custodian is then
    approved by a second person (see :func:`approve_custodian_as_witness`) unless
    ``approve`` is False."""
    with transaction(engine) as s:
        enrol(s, admin, clock, name, role, sites=sites, custodian=custodian, password=password,
              approve=approve)


def enrol(
    session: Session,
    admin: Actor,
    clock: Clock,
    name: str,
    role: Role,
    *,
    sites: list[str] | None = None,
    custodian: bool = False,
    password: str = PASSWORD,
    approve: bool = True,
) -> None:
    """:func:`add_user` inside a transaction the caller holds."""
    account = create_user(
        session, admin, name=name, role=role, sites=sites or [], custodian=custodian,
        clock=clock,
    )
    done = activate_user(
        session, name=name, code=account.enrolment_code, new_password=password, clock=clock
    )
    if approve and done.custodian_key is not None:
        approve_custodian_as_witness(session, admin, clock, name, done.custodian_key)


WITNESS = "quinn"  # the investigator who approves a test trial's first custodian


def approve_custodian_as_witness(
    session: Session, admin: Actor, clock: Clock, name: str, fingerprint: str
) -> None:
    """A second person approves custodian ``name`` after checking the fingerprint they read
    out, as ``trialkit custodian approve`` does: an approved custodian (who re-wraps the
    list keys to them, password ``PASSWORD``), or for the first custodian an investigator
    (quinn, added if the trial has none)."""
    approvers = [u for u in approved_custodians(session) if u.name != name]
    if not approvers:
        investigators = session.exec(
            select(User).where(User.role == Role.INVESTIGATOR.value, col(User.disabled).is_(False),
                               col(User.activated_at).is_not(None), User.name != name)
            .order_by(col(User.name))
        ).all()
        if not investigators:
            enrol(session, admin, clock, WITNESS, Role.INVESTIGATOR)
            investigators = [session.exec(select(User).where(User.name == WITNESS)).one()]
        approvers = list(investigators)
    approver = actor_for(session, approvers[0])  # signed in: their key signs the approval
    approver = approver.signing_with(unlock_signing_key(session, approver, PASSWORD))
    approve_custodian(session, approver, name=name,
                      fingerprint=fingerprint, password=PASSWORD, clock=clock)
