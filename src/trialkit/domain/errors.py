"""Domain errors: each says what happened in words every face can show, and what kind of
failure it is (invalid input or a refusal: the CLI's exit status 2 or 1).

An error never names a face's controls (a command-line option, a key): what the user must
still give is named in ``needs`` and what they can do instead in ``next_step``, and each face
words those its own way (``cli.wording``, ``tui.wording``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

# What a user may have left out, named by meaning; each face says where it goes.
Need = Literal["lots", "checker", "reason", "infusion-time", "sites", "procedure"]

# What a user can do instead, named by use case.
StepAction = Literal["prepare-again", "print-labels-again", "dispense", "extend-list",
                     "correct-diary-day", "approve-custodian", "seal-lists", "create-trial",
                     "verify-audit", "change-own-password", "enrol-second-factor"]


@dataclass(frozen=True)
class NextStep:
    """The use case that gets the user further (``action``) and what it applies to: a
    participant, a stratum, or a participant's diary day (``day``)."""

    action: StepAction
    subject: str
    day: str | None = None


class TrialkitError(Exception):
    """Base of every error a user may see. ``str(err)`` is the message."""

    exit_code = 1
    # When True, the transaction commits what the service recorded about the refusal
    # (a failed sign-in count, an audit event) before the error reaches the user.
    keep_record = False
    # Set by ``services.integrity.refusals`` on a refusal that left no record: the store runs it in
    # a
    # transaction of its own after the refused one has rolled back (the argument is that
    # transaction's session).
    record_after: Callable[[Any], None] | None = None

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 needs: tuple[Need, ...] = (), next_step: NextStep | None = None) -> None:
        super().__init__(message)
        self.message = message
        # What a script reading --json output gets besides the message (e.g. which audit
        # event failed verification); the CLI adds "error" and "exit_code" to it.
        self.details = details
        self.needs = needs
        self.next_step = next_step


class InvalidInput(TrialkitError):
    """The input itself is wrong (a bad value, a bad file, unknown name)."""

    exit_code = 2


class ProtocolFileError(InvalidInput):
    """A protocol file failed to load or validate."""


class Refused(TrialkitError):
    """A rule or the state of the trial refuses the action."""

    exit_code = 1


class PermissionDenied(Refused):
    """The actor's role lacks the permission the action needs."""


class AuthenticationFailed(Refused):
    """Wrong user name or password (never says which)."""


class AccountLocked(Refused):
    """Too many failed sign-ins, or the account is disabled."""


class NotFound(InvalidInput):
    """A named thing (user, participant, site) does not exist."""


class IntegrityFailure(Refused):
    """Verification found tampering or corruption."""


class Busy(Refused):
    """Another change held the database's write lock longer than trialkit waits for it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the database is busy: another change held it for more than "
                         f"{seconds:g} s; nothing was changed (try again)")


class DiskFull(Refused):
    """The disk (or the database server's) is full: the step failed and changed nothing."""

    def __init__(self, where: str) -> None:
        super().__init__(f"disk full: {where}; nothing was changed (free some space and try "
                         "again)")


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_failed(err: OSError, path: object) -> TrialkitError:
    """The user's message for a file that could not be written: a full disk is refused
    (exit 1) like any full disk, anything else names the file and the reason (exit 2)."""
    if err.errno in _NO_SPACE:
        return DiskFull(f"cannot write {path}")
    return InvalidInput(f"cannot write {path}: {err.strerror or err}")
