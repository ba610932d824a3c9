"""Every table of a trialkit database. Schema changes go through Alembic migrations
(``store/migrations``); ``create_all`` is never used outside tests."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from trialkit.store.types import JSONText, UTCDateTime, json_document


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
    # Built by `trialkit demo`: the only trial `demo --fresh` may erase (with training).
    demo: bool = Field(default=False)
    created_at: datetime = Field(sa_column=_utc())
    locked_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    locked_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # The recovery key's public half (X25519); its private half exists only on paper.
    recovery_public_key: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, nullable=True)
    )


class Site(SQLModel, table=True):
    __tablename__ = "site"

    code: str = Field(sa_column=Column(String(16), primary_key=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    target: int


class User(SQLModel, table=True):
    """A person who signs in. An admin adds them with a one-time enrolment code (stored only
    as its hash); at activation they choose their own password and make their own Ed25519
    signing key, and a custodian their own X25519 key pair. Private halves are stored only
    wrapped under a key derived from their password. A custodian receives list keys only
    once a second person approved them (``custodian_approved_*``).

    ``failed_logins`` counts wrong passwords in a row and ``locked_until`` is the earliest
    time the next attempt is checked (sign-in throttling, not a lockout)."""

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
    key_kdf: str | None = Field(default=None, sa_column=Column(JSONText, nullable=True))
    activated_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    enrolment_code_hash: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True)
    )
    enrolment_expires_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    signing_public_key: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, nullable=True)
    )
    wrapped_signing_key: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, nullable=True)
    )
    signing_kdf: str | None = Field(default=None, sa_column=Column(JSONText, nullable=True))
    custodian_approved_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    custodian_approved_by: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True)
    )
    # A custodian's second factor (TOTP): the shared secret wrapped under their password like
    # their keys, and the last time step accepted (a code is never accepted twice).
    totp_wrapped: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    totp_kdf: str | None = Field(default=None, sa_column=Column(JSONText, nullable=True))
    totp_last_step: int | None = Field(default=None)


class SignInThrottle(SQLModel, table=True):
    """Wrong passwords typed for a name that is no account: counted and delayed exactly as
    for an account (``app_user.failed_logins``/``locked_until``), so the delay a guesser
    meets does not say whether a name exists."""

    __tablename__ = "sign_in_throttle"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


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
    # The author's Ed25519 signature over ``hash`` (domain.audit_signing); None only for
    # the few actions no signed-in person causes (audit_signing.UNSIGNED_ACTIONS).
    signature: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class Stratum(SQLModel, table=True):
    """A stratum (site x stratification levels); its row is the lock taken to claim the next
    envelope of its list."""

    __tablename__ = "stratum"

    code: str = Field(sa_column=Column(String(64), primary_key=True))
    # None when the protocol does not stratify by site (one list serves every site).
    site_code: str | None = Field(default=None, foreign_key="site.code", nullable=True)
    levels_json: dict[str, str] = Field(sa_column=Column(json_document(), nullable=False))


class AllocationList(SQLModel, table=True):
    """One sealed segment of a stratum's list: the first one, or an extension. Holds the
    sealed procedure (block sizes) and the signed manifest; never an arm in clear."""

    __tablename__ = "allocation_list"
    __table_args__ = (UniqueConstraint("stratum_code", "segment"),)

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    stratum_code: str = Field(foreign_key="stratum.code")
    segment: int
    first_seq: int
    count: int
    # Envelopes this sealing or extension released (the count asked for): a stratum's first
    # sum-of-released envelopes may be claimed, the rest of its whole blocks stay sealed and
    # held back until an extension releases them. None: sealed before whole blocks (schema
    # 0007), when a segment held exactly what was asked for (all of it released).
    released: int | None = Field(default=None, nullable=True)
    # The design the segment was sealed with, as the protocol states it (canonical JSON);
    # None before schema 0007.
    design: dict[str, Any] | None = Field(
        default=None, sa_column=Column(json_document(), nullable=True)
    )
    sealed_policy: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    policy_hash: str = Field(sa_column=Column(String(64), nullable=False))
    root: str = Field(sa_column=Column(String(64), nullable=False))
    # Every envelope's leaf (32 bytes each, in order): lets verification name the envelope
    # that changed. Authentic because its Merkle root must equal the signed root.
    leaves: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signing_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(sa_column=_utc())
    created_by: str = Field(sa_column=Column(String(64), nullable=False))
    # The data key wrapped (HPKE) to the trial's recovery key.
    recovery_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class ListKeyGrant(SQLModel, table=True):
    """A list's data key wrapped (HPKE) to one custodian's public key."""

    __tablename__ = "list_key_grant"

    list_id: str = Field(foreign_key="allocation_list.id", primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Envelope(SQLModel, table=True):
    """One sealed allocation. Ciphertexts have the same length for every arm."""

    __tablename__ = "envelope"
    __table_args__ = (UniqueConstraint("stratum_code", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    list_id: str = Field(foreign_key="allocation_list.id", index=True)
    stratum_code: str = Field(foreign_key="stratum.code")
    seq: int
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    commitment: str = Field(sa_column=Column(String(64), nullable=False))
    participant_id: str | None = Field(
        default=None,
        sa_column=Column(String(16), ForeignKey("participant.id"), nullable=True, unique=True),
    )
    bound_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class Participant(SQLModel, table=True):
    """A screened person, from screening to randomization and beyond."""

    __tablename__ = "participant"
    __table_args__ = (UniqueConstraint("site_code", "number"),)

    id: str = Field(sa_column=Column(String(16), primary_key=True))
    site_code: str = Field(foreign_key="site.code")
    number: int
    stratum_code: str = Field(sa_column=Column(String(64), nullable=False))
    factors_json: dict[str, str] = Field(sa_column=Column(json_document(), nullable=False))
    age: int
    sex: str = Field(sa_column=Column(String(1), nullable=False))
    weight_kg: float
    answers_json: dict[str, Any] = Field(sa_column=Column(json_document(), nullable=False))
    eligible: bool
    failed_json: list[str] = Field(sa_column=Column(json_document(), nullable=False))
    screened_at: datetime = Field(sa_column=_utc())
    screened_by: str = Field(sa_column=Column(String(64), nullable=False))
    consent_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    consent_form_version: str | None = Field(
        default=None, sa_column=Column(String(32), nullable=True)
    )
    withdrawn_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    withdrawal_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    randomization_number: str | None = Field(
        default=None, sa_column=Column(String(16), nullable=True, unique=True)
    )
    label_code: str | None = Field(
        default=None, sa_column=Column(String(16), nullable=True, unique=True)
    )
    randomized_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    infusion_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    planned_infusion_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    unblinded_emergency: bool = Field(default=False)


class Preparation(SQLModel, table=True):
    """One preparation of a participant's infusion. What differs by arm (product lots) is
    sealed under the list's data key; the rest is blinded and the same for both.

    A participant has at most one current preparation (``voided_at`` unset); preparing again
    (it expired, or was spoilt) marks the current one void and adds the next ``number``."""

    __tablename__ = "preparation"
    __table_args__ = (
        UniqueConstraint("participant_id", "number", name="uq_preparation_number"),
        Index(
            "ix_preparation_one_current",
            "participant_id",
            unique=True,
            sqlite_where=text("voided_at IS NULL"),
            postgresql_where=text("voided_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    participant_id: str = Field(
        sa_column=Column(String(16), ForeignKey("participant.id"), nullable=False)
    )
    number: int = Field(default=1)  # 1, then 2, 3, ... when prepared again
    prepared_at: datetime = Field(sa_column=_utc())
    prepared_by: str = Field(sa_column=Column(String(64), nullable=False))
    checked_by: str = Field(sa_column=Column(String(64), nullable=False))
    # when the checker signed the check with their password; None: recorded before checks
    # were signed (the checker was only named)
    checked_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    expires_at: datetime = Field(sa_column=_utc())
    sealed_details: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    label_prints: int = Field(default=0)
    voided_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    voided_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    void_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class DiaryWindowSummary(SQLModel, table=True):
    """What a randomized participant's diary says of one window, kept current in the same
    transaction as every change it depends on (a diary day, randomization, infusion,
    withdrawal) by ``services.diary.window_summary``: derived, never edited, never audited (the
    diary, the participant and their audit events are the record; the summary can be
    rebuilt from them at any time). Dates are day numbers (``date.toordinal()``) so either
    backend can do arithmetic on them. Blinded: nothing here depends on an arm."""

    __tablename__ = "diary_window_summary"

    participant_id: str = Field(
        sa_column=Column(String(16), ForeignKey("participant.id"), primary_key=True)
    )
    window: str = Field(sa_column=Column(String(32), primary_key=True))
    site_code: str = Field(sa_column=Column(String(64), nullable=False))
    is_primary: bool
    is_baseline: bool
    randomized_day: int
    start_day: int | None = None  # None while the window's anchor (the infusion) is unknown
    end_day: int | None = None
    since_day: int  # consent: the diary starts there
    withdrawn_day: int | None = None
    first_day: int | None = None  # the first day that can be expected: start or consent
    last_day: int | None = None  # the last: the window's end, or the withdrawal if earlier
    infused: bool
    days_recorded: int  # from consent on, today's day included
    prorated: bool  # the window's prorated headache days are not missing
    last_recorded_day: int | None = None  # the participant's latest diary day (any window)


class DiaryEntry(SQLModel, table=True):
    """One version of one participant's diary day. A correction adds a version; the latest
    is current and nothing is overwritten."""

    __tablename__ = "diary_entry"
    __table_args__ = (UniqueConstraint("participant_id", "day", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: str = Field(
        sa_column=Column(String(16), ForeignKey("participant.id"), nullable=False, index=True)
    )
    day: date = Field(sa_column=Column(Date, nullable=False))
    version: int
    headache: bool
    severity: str = Field(sa_column=Column(String(16), nullable=False))
    duration_hours: float
    acute_medication: bool
    recorded_by: str = Field(sa_column=Column(String(64), nullable=False))
    recorded_at: datetime = Field(sa_column=_utc())
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    current: bool = Field(default=True)
