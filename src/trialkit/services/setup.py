"""Creating a trial database: schema, protocol, first admin — all or nothing."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from trialkit.domain.clock import Clock
from trialkit.domain.errors import Refused
from trialkit.domain.passwords import check_new_password
from trialkit.domain.protocol import LoadedProtocol
from trialkit.domain.roles import Role
from trialkit.services.actor import SYSTEM
from trialkit.services.trial import create_trial
from trialkit.services.users import create_user, validate_name
from trialkit.store import schema


def initialize(
    engine: Engine,
    loaded: LoadedProtocol,
    *,
    admin: str,
    admin_password: str,
    training: bool,
    clock: Clock,
) -> None:
    """Apply the migrations, store the protocol and create the first admin."""
    validate_name(admin)
    check_new_password(admin_password)
    revision = schema.schema_revision(engine)
    if revision is not None:
        schema.check_current(engine)
    # Schema, protocol and admin in one transaction: a refused init leaves no tables behind.
    with engine.begin() as conn:
        if revision is None:
            schema.upgrade_on(conn)
        session = Session(bind=conn)
        create_trial(session, loaded, training=training, clock=clock)
        create_user(
            session,
            SYSTEM,
            name=admin,
            role=Role.ADMIN,
            password=admin_password,
            sites=[],
            custodian=False,
            clock=clock,
        )
        session.flush()
        session.close()


def upgrade_schema(engine: Engine) -> str:
    """Bring an existing trial database to this trialkit's schema; returns the new revision."""
    revision = schema.schema_revision(engine)
    if revision is None:
        raise Refused("this database holds no trial yet (create one with `trialkit init`)")
    schema.upgrade(engine)
    return schema.SCHEMA_HEAD
