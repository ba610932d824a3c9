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
    from trialkit.services.users import NewAccount


def reissue_enrolment(db: TrialDatabase, actor: Actor, *, name: str) -> NewAccount:
    """An admin issues ``name`` a new one-time enrolment code (never for a custodian)."""
    from trialkit.services.users import reissue_enrolment as reissue

    with db.uow.write() as session:
        return reissue(session, actor, name=name, clock=db.clock)


def change_password(db: TrialDatabase, actor: Actor, *, current: str, new: str) -> int:
    """Change the actor's own password: new key pairs, list keys re-wrapped (how many)."""
    from trialkit.services.users import change_password as change

    with db.uow.write() as session:
        return change(session, actor, current_password=current, new_password=new,
                      clock=db.clock)
