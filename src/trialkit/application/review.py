"""Use cases of review and reporting that the TUI does not offer (the CLI calls them; those
it shares with the TUI are :class:`~trialkit.application.trial_database.TrialDatabase`
methods): audit log and export after the lock, the randomization report.

Each opens its transaction on the database's unit of work, runs the service (which checks
the permission and records the audit event) and commits or rolls back. Services are
imported inside each call, so that ``trialkit --help`` loads none of them."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.domain.checkpoint import Checkpoint
    from trialkit.services.actor import Actor
    from trialkit.services.exports.randomization_report import RandomizationReport
    from trialkit.services.integrity.audit_review import AuditFilter, ReviewedEvent
    from trialkit.services.integrity.checkpoints import CheckpointCheck
    from trialkit.services.integrity.verification import VerifyReport


def randomization_report(db: TrialDatabase, actor: Actor, *,
                         password: str) -> RandomizationReport:
    """After the lock, a custodian's report of every allocation (audited; UNBLINDED)."""
    from trialkit.services.exports.randomization_report import randomization_report as report

    with db.uow.write() as session:
        return report(session, actor, password=password, clock=db.clock)


def verify_trail(
    db: TrialDatabase, checkpoints: Sequence[tuple[str, Checkpoint]], *,
    expected_head: str | None, progress: Callable[[int, int], None],
) -> tuple[list[CheckpointCheck], VerifyReport]:
    """Each checkpoint (with where it came from) checked against the trail, then the chain,
    every audited record and every list verified (``expected_head``: the chain must end
    there), all from one snapshot; writes nothing, needs no sign-in."""
    from trialkit.services.integrity.checkpoints import check_checkpoint
    from trialkit.services.integrity.verification import verify

    with db.uow.snapshot() as session:
        held = [check_checkpoint(session, cp, where) for where, cp in checkpoints]
        return held, verify(session, expected_head=expected_head, progress=progress)


def check_filters(db: TrialDatabase, filters: AuditFilter) -> None:
    """Refuse (bad input) audit filters that can match nothing (a read; no sign-in)."""
    from trialkit.services.integrity.audit_review import check_filters as check

    with db.uow.read() as session:
        check(session, filters)


def audit_events(db: TrialDatabase, actor: Actor, filters: AuditFilter, *,
                 newest: int | None) -> Generator[ReviewedEvent]:
    """Every matching event, oldest first, streamed from one read transaction that stays
    open while the events are taken (close the iterator to end it early)."""
    from trialkit.services.integrity.audit_review import audit_events as events

    with db.uow.read() as session:
        yield from events(session, actor, filters, newest=newest)
