"""Every table of a trialkit database. Schema changes go through Alembic migrations
(``store/migrations``); ``create_all`` is never used outside tests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from trialkit.store.types import UTCDateTime


def _utc(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class Trial(SQLModel, table=True):
    """The one trial this database belongs to, with the exact protocol it was built from."""

    __tablename__ = "trial"

    id: int = Field(default=1, primary_key=True)
    trial_code: str = Field(sa_column=Column(String(64), nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    protocol_version: str = Field(sa_column=Column(String(64), nullable=False))
    protocol_sha256: str = Field(sa_column=Column(String(64), nullable=False))
    protocol_text: str = Field(sa_column=Column(Text, nullable=False))
    training: bool = Field(default=False)
    created_at: datetime = Field(sa_column=_utc())


class Site(SQLModel, table=True):
    __tablename__ = "site"

    code: str = Field(sa_column=Column(String(16), primary_key=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    target: int


class User(SQLModel, table=True):
    """A person who signs in. Custodians also hold an X25519 key pair whose private half
    is stored only wrapped under a key derived from their password."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    custodian: bool = Field(default=False)
    disabled: bool = Field(default=False)
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    created_at: datetime = Field(sa_column=_utc())
    password_changed_at: datetime = Field(sa_column=_utc())
    public_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    wrapped_private_key: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, nullable=True)
    )
    key_kdf: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class UserSite(SQLModel, table=True):
    __tablename__ = "user_site"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    site_code: str = Field(foreign_key="site.code", primary_key=True)


class AuditEvent(SQLModel, table=True):
    """Append-only, hash-chained record of every change. The database refuses UPDATE and
    DELETE on it; ``audit verify`` catches anyone who gets past that."""

    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("hash", name="uq_audit_event_hash"),)

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=_utc())
    user_name: str = Field(sa_column=Column(String(64), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    action: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    entity: str = Field(sa_column=Column(String(32), nullable=False))
    entity_id: str = Field(sa_column=Column(String(128), nullable=False))
    before_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    after_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))
