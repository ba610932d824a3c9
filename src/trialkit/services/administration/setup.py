"""Creating a trial database: schema, protocol, first admin — all or nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

from trialkit.domain.clock import Clock
from trialkit.domain.errors import NextStep, Refused
from trialkit.domain.passwords import check_new_password
from trialkit.domain.protocol import LoadedProtocol
from trialkit.domain.recovery import RecoveryKey, new_recovery_key
from trialkit.services.administration.trial import create_trial
from trialkit.services.administration.users import create_first_admin, validate_name
from trialkit.store import schema
from trialkit.store.db import read_only, use_wal
from trialkit.store.models import Trial


def initialize(
    engine: Engine,
    loaded: LoadedProtocol,
    *,
    admin: str,
    admin_password: str,
    training: bool,
    clock: Clock,
    demo: bool = False,
) -> RecoveryKey:
    """Apply the migrations, store the protocol and create the first admin (``demo``: this
    is the throwaway training trial of ``trialkit demo``). Returns the trial's new recovery
    key, whose words the caller prints once on the recovery sheet: only its public half is
    stored."""
    validate_name(admin)
    check_new_password(admin_password, context=[admin, loaded.protocol.trial.id])
    revision = schema.schema_revision(engine)
    if revision is not None:
        schema.check_current(engine)
    else:
        schema.refuse_foreign_tables(engine)
        use_wal(engine)
    recovery = new_recovery_key()
    # Schema, protocol and admin in one transaction: a refused init leaves no tables behind.
    with schema.migrating(engine) as conn:
        if revision is None:
            schema.upgrade_on(conn)
        session = Session(bind=conn)
        # The admin's account first: their new signing key signs every event of init.
        first_admin = create_first_admin(
            session, name=admin, password=admin_password, clock=clock
        )
        create_trial(
            session, loaded, training=training, clock=clock, created_by=first_admin,
            demo=demo, recovery_public_key=recovery.public_key,
        )
        session.flush()
        session.close()
    return recovery


@dataclass(frozen=True)
class FoundTrial:
    """The trial a database already holds, as `trialkit demo` must know it before it may
    touch that database."""

    trial_code: str
    protocol_version: str
    training: bool
    demo: bool

    @property
    def is_demo(self) -> bool:
        """The throwaway trial `trialkit demo` built: the only one it may rebuild."""
        return self.training and self.demo

    def describe(self) -> str:
        kind = "the demo training trial" if self.is_demo else (
            "the training trial" if self.training else "the LIVE trial")
        return f"{kind} {self.trial_code} (protocol {self.protocol_version})"


def found_trial(engine: Engine) -> FoundTrial | None:
    """What an existing database holds: None if it is empty (no tables at all), else its
    trial. A database holding something other than a trialkit trial is refused."""
    revision = schema.schema_revision(engine)
    if revision is None:
        if schema.table_names(engine):
            raise Refused("this database holds tables but no trialkit trial; it was not touched")
        return None
    schema.check_current(engine)
    with read_only(engine) as session:
        trial = session.get(Trial, 1)
        if trial is None:
            raise Refused("this database holds a trialkit schema but no trial; it was not touched")
        return FoundTrial(trial.trial_code, trial.protocol_version, trial.training, trial.demo)


def upgrade_schema(engine: Engine) -> str:
    """Bring an existing trial database to this trialkit's schema; returns the new revision."""
    revision = schema.schema_revision(engine)
    if revision is None:
        raise Refused("this database holds no trial yet",
                      next_step=NextStep("create-trial", ""))
    schema.upgrade(engine)
    return schema.SCHEMA_HEAD
