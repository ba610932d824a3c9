"""Creating the trial from a protocol file, and reading what trial a database holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from trialkit.domain.clock import Clock
from trialkit.domain.credentials import key_fingerprint
from trialkit.domain.errors import InvalidInput, NextStep, Refused
from trialkit.domain.protocol import LoadedProtocol, Protocol, protocol_from_text
from trialkit.domain.site_time import SiteTime
from trialkit.services.actor import Actor
from trialkit.services.integrity import audit
from trialkit.store.models import Site, Trial


@dataclass(frozen=True)
class SiteInfo:
    code: str
    name: str
    target: int


@dataclass(frozen=True)
class TrialInfo:
    """What every screen shows about the trial (nothing that depends on an arm)."""

    trial_code: str
    title: str
    protocol_version: str
    protocol_sha256: str
    training: bool
    sites: tuple[SiteInfo, ...]
    idle_lock_minutes: int
    # custodians sign in with a code from an authenticator app too ([security] custodian_totp)
    second_factor: bool = False


def trial_snapshot(session: Session, t: Trial) -> dict[str, Any]:
    """The trial row and its sites as the audit trail records them."""
    sites = session.exec(select(Site)).all()
    return {
        "trial": t.trial_code,
        "title": t.title,
        "protocol_version": t.protocol_version,
        "protocol_sha256": t.protocol_sha256,
        "training": t.training,
        # Only for the demo, so the events of every other trial still match their trial row.
        **({"demo": True} if t.demo else {}),
        "sites": {s.code: s.target for s in sites},
        "locked_at": t.locked_at.isoformat() if t.locked_at else None,
        # Only once locked, so the events of databases created before the lock existed
        # still match their trial row.
        **({"locked_by": t.locked_by} if t.locked_by is not None else {}),
        # Only where the trial has one, so the events of trials made before it still match.
        **({"recovery_key": key_fingerprint(t.recovery_public_key)}
           if t.recovery_public_key is not None else {}),
    }


def create_trial(
    session: Session,
    loaded: LoadedProtocol,
    *,
    training: bool,
    clock: Clock,
    created_by: Actor,
    demo: bool = False,
    recovery_public_key: bytes | None = None,
) -> Trial:
    """Store the protocol (text, version, hash), its sites and the public half of its recovery
    key (every list key is wrapped to it too). A database holds one trial.
    ``created_by`` is the first admin, who runs ``init`` (the event is theirs, signed by
    them). ``demo``
    marks the throwaway training trial of ``trialkit demo`` (a training trial)."""
    if demo and not training:
        raise InvalidInput("only a training trial can be the demo")
    existing = session.get(Trial, 1)
    if existing is not None:
        raise Refused(
            f"this database already holds trial {existing.trial_code} "
            f"(protocol version {existing.protocol_version}); a database belongs to one protocol"
        )
    p = loaded.protocol
    trial = Trial(
        id=1,
        trial_code=p.trial.id,
        title=p.trial.title,
        protocol_version=p.trial.version,
        protocol_sha256=loaded.sha256,
        protocol_text=loaded.text,
        training=training,
        demo=demo,
        created_at=clock.now(),
        recovery_public_key=recovery_public_key,
    )
    session.add(trial)
    for site in p.sites:
        session.add(Site(code=site.code, name=site.name, target=site.target))
    session.flush()
    audit.record(
        session,
        created_by,
        action="trial.create",
        entity="trial",
        entity_id=p.trial.id,
        after=trial_snapshot(session, trial),
        reason=f"created from {loaded.source}",
        clock=clock,
    )
    return trial


def get_trial(session: Session) -> Trial:
    """The trial row, or a clear refusal if the database holds none."""
    trial = session.get(Trial, 1)
    if trial is None:
        raise InvalidInput("this database holds no trial yet",
                           next_step=NextStep("create-trial", ""))
    return trial


def check_stated_time(session: Session, at: datetime) -> None:
    """A training trial's stated time (``TRIALKIT_CLOCK``) never runs backwards: a time
    earlier than the trial's last audit event is refused, so the audit trail stays in
    time order."""
    last = audit.last_event_at(session)
    if last is not None and at < last:
        raise Refused(
            f"TRIALKIT_CLOCK {at:%Y-%m-%d %H:%M:%S} UTC is earlier than this training trial's "
            f"last audit event ({last:%Y-%m-%d %H:%M:%S} UTC): its time only moves forward; "
            "set TRIALKIT_CLOCK to that time or later"
        )


def ensure_unlocked(session: Session) -> None:
    """Refuse any clinical write once the database is locked."""
    row = session.exec(select(Trial.locked_at, Trial.locked_by).where(Trial.id == 1)).first()
    if row is None:
        raise InvalidInput("this database holds no trial yet",
                           next_step=NextStep("create-trial", ""))
    locked_at, locked_by = row
    if locked_at is not None:
        by = f" by {locked_by}" if locked_by else ""
        raise Refused(
            f"the database was locked on {trial_time(session).show(locked_at)}{by}: "
            "clinical data can no longer change"
        )


# Parsed protocols by SHA-256: the stored text never changes, so hot paths (randomize,
# diary entry) read only its 64-character hash and parse the text once per process.
_PARSED: dict[str, Protocol] = {}


def stored_protocol(session: Session) -> Protocol:
    """The protocol this database was created from (never re-read from a file)."""
    sha = session.exec(select(Trial.protocol_sha256).where(Trial.id == 1)).first()
    if sha is None:
        raise InvalidInput("this database holds no trial yet",
                           next_step=NextStep("create-trial", ""))
    if sha not in _PARSED:
        loaded = protocol_from_text(
            get_trial(session).protocol_text, source="the protocol stored in the database",
            stored=True,
        )
        _PARSED[sha] = loaded.protocol
    return _PARSED[sha]


def site_time(session: Session, site_code: str) -> SiteTime:
    """Local time at a site: its dates ("today", a study day) and the times its staff read."""
    return stored_protocol(session).site_time(site_code)


def trial_time(session: Session) -> SiteTime:
    """Local time for what belongs to no one site (the lock, trial-wide reports)."""
    return stored_protocol(session).trial_time


def trial_info(session: Session) -> TrialInfo:
    """Title, version, sites and settings of the trial in this database."""
    trial = get_trial(session)
    protocol = stored_protocol(session)
    sites = session.exec(select(Site).order_by(Site.code)).all()
    return TrialInfo(
        trial_code=trial.trial_code,
        title=trial.title,
        protocol_version=trial.protocol_version,
        protocol_sha256=trial.protocol_sha256,
        training=trial.training,
        sites=tuple(SiteInfo(s.code, s.name, s.target) for s in sites),
        idle_lock_minutes=protocol.ui.idle_lock_minutes,
        second_factor=protocol.security.custodian_totp,
    )
