"""Use cases of the trial's administration that the TUI does not offer (the CLI calls them;
those it shares with the TUI are :class:`~trialkit.application.trial_database.TrialDatabase`
methods): passwords and enrolment codes, allocation lists, custody, the design.

Each opens its transaction on the database's unit of work, runs the service (which checks
the permission and records the audit event) and commits or rolls back. Services are
imported inside each call, so that ``trialkit --help`` loads none of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.services.actor import Actor
    from trialkit.services.administration.custody import GrantResult, Recovery
    from trialkit.services.administration.users import NewAccount
    from trialkit.services.exports.sealed_procedure import SegmentProcedure
    from trialkit.services.integrity.list_verification import ListCheck


def reissue_enrolment(db: TrialDatabase, actor: Actor, *, name: str) -> NewAccount:
    """An admin issues ``name`` a new one-time enrolment code (never for a custodian)."""
    from trialkit.services.administration.users import reissue_enrolment as reissue

    with db.uow.write() as session:
        return reissue(session, actor, name=name, clock=db.clock)


def change_password(db: TrialDatabase, actor: Actor, *, current: str, new: str) -> int:
    """Change the actor's own password: new key pairs, list keys re-wrapped (how many)."""
    from trialkit.services.administration.users import change_password as change

    with db.uow.write() as session:
        return change(session, actor, current_password=current, new_password=new,
                      clock=db.clock)


def verify_lists(db: TrialDatabase) -> tuple[list[ListCheck], list[str]]:
    """Every list's signature and commitments checked, and what is wrong with custody (a
    read transaction; writes nothing)."""
    from trialkit.services.administration.custody import custody_problems
    from trialkit.services.integrity.list_verification import verify_lists as check_lists

    with db.uow.read() as session:
        return check_lists(session), custody_problems(session)


def open_procedures(db: TrialDatabase, actor: Actor, *,
                    password: str) -> list[SegmentProcedure]:
    """After the lock, a custodian opens the sealed procedure of every list (audited)."""
    from trialkit.services.exports.sealed_procedure import open_procedures as open_all

    with db.uow.write() as session:
        return open_all(session, actor, password=password, clock=db.clock)


def reset_second_factor(db: TrialDatabase, actor: Actor, *, name: str, reason: str) -> None:
    """A second approved custodian removes ``name``'s second factor (audited)."""
    from trialkit.services.administration.second_factor import reset_second_factor as reset

    with db.uow.write() as session:
        reset(session, actor, name=name, reason=reason, clock=db.clock)


def recover_custody(db: TrialDatabase, actor: Actor, *, name: str, fingerprint: str,
                    words: str) -> Recovery:
    """Every list key wrapped to ``name`` from the sponsor's recovery sheet (audited)."""
    from trialkit.services.administration.custody import recover_custody as recover

    with db.uow.write() as session:
        return recover(session, actor, name=name, fingerprint=fingerprint, words=words,
                       clock=db.clock)


def grant_custodian(db: TrialDatabase, actor: Actor, *, password: str,
                    grantee: str) -> GrantResult:
    """Give an approved custodian the list keys they lack (audited)."""
    from trialkit.services.administration.custody import grant_custodian as grant

    with db.uow.write() as session:
        return grant(session, actor, password=password, grantee=grantee, clock=db.clock)
