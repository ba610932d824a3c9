"""The admin's user dialogs: adding a user, the one-time enrolment code shown once, and
disabling a user (with a reason for the audit trail). Which names, roles, sites and
custodian flags are allowed is the service's rule (``services.administration.users.create_user``):
the
form only collects what is typed and shows the service's one-line refusal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Grid
from textual.content import Content
from textual.widgets import Checkbox, Input, Label, Select, Static

from trialkit.domain.roles import Role
from trialkit.tui.dialogs.dialog import Dialog

if TYPE_CHECKING:
    from trialkit.services.administration.users import NewAccount


@dataclass(frozen=True)
class AddUserRequest:
    """What the admin typed: the service checks every part of it."""

    name: str
    role: str
    sites: tuple[str, ...]
    custodian: bool


class AddUserDialog(Dialog[AddUserRequest | None]):
    """Name, role, sites (coordinators and site pharmacists) and, for an investigator, the
    custodian flag."""

    def __init__(self, sites: tuple[str, ...]) -> None:
        super().__init__("Add a user", cancel_result=None, ok_label="Add")
        self._sites = sites

    def fields(self) -> ComposeResult:
        """The form."""
        yield Static(
            Content("They get a one-time enrolment code, shown to you once, and set their own "
                    "password with it. Nobody else ever knows it."),
            classes="dialog-text",
        )
        with Grid(classes="dialog-grid"):
            yield Label("Name")
            yield Input(placeholder="e.g. nina (lower case)", id="user-name-new", compact=True)
            yield Label("Role")
            yield Select([(r.value, r.value) for r in Role], prompt="choose a role",
                         id="user-role", compact=True)
            yield Label("Sites")
            example = self._sites[0] if self._sites else "TWH"
            yield Input(placeholder=f"e.g. {example} (coordinators)", id="user-sites",
                        compact=True)
            yield Label("Custodian")
            yield Checkbox("investigator holds the key", id="user-custodian", compact=True)

    def result(self) -> AddUserRequest | None:
        """The request; a ValueError when the name or the role is missing."""
        name = self.query_one("#user-name-new", Input).value.strip()
        if not name:
            raise ValueError("Type the new user's sign-in name.")
        role = self.query_one("#user-role", Select).value
        if not isinstance(role, str):
            raise ValueError("Choose the new user's role.")
        sites = self.query_one("#user-sites", Input).value
        return AddUserRequest(
            name, role, tuple(s.strip() for s in sites.replace(" ", ",").split(",") if s.strip()),
            self.query_one("#user-custodian", Checkbox).value,
        )


def describe_code(account: NewAccount) -> str:
    """What the code dialog says: the code once, and how to hand it over."""
    until = account.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    sites = f" at {', '.join(account.sites)}" if account.sites else ""
    custodian = ", unblinding custodian" if account.custodian else ""
    return (
        f"{account.name} ({account.role}{sites}{custodian}) was added.\n\n"
        f"One-time enrolment code   {account.enrolment_code}\n"
        f"Valid until               {until}, once\n\n"
        f"Hand this code over out of band: tell {account.name} in person or by phone, "
        "never by e-mail or chat. They set their own password with it at first sign-in "
        "(F2 on the sign-in screen). It is not shown again."
    )


class EnrolmentCodeDialog(Dialog[None]):
    """The new user's one-time code, with one Close button."""

    def __init__(self, account: NewAccount) -> None:
        super().__init__("Enrolment code", cancel_result=None, ok_label="Close",
                         show_cancel=False)
        self.account = account

    def fields(self) -> ComposeResult:
        """The code and how to hand it over."""
        yield Static(Content(describe_code(self.account)), id="enrolment-code-text")

    def result(self) -> None:
        """Nothing to return."""
        return None


class DisableUserDialog(Dialog[str | None]):
    """Disable a user: why (kept in the audit trail). Returns the reason ('' if none)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Disable {name}", cancel_result=None, ok_label="Disable")
        self._name = name

    def fields(self) -> ComposeResult:
        """What happens, and the reason."""
        yield Static(
            Content(f"{self._name} can no longer sign in; everything they recorded is kept. "
                    "You can enable them again later."),
            classes="dialog-text",
        )
        yield Input(placeholder="Reason (kept in the audit trail)", id="disable-reason",
                    compact=True)

    def result(self) -> str | None:
        """The reason as typed (the service checks its length)."""
        return self.query_one("#disable-reason", Input).value.strip()
