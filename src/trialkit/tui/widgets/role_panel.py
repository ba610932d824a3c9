"""What the signed-in role does here, and the key that opens their screen (a placeholder
for roles whose screens have not landed yet).

The list of what the role may do comes from the permission table in ``domain.roles``,
so it cannot drift from what the services enforce."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

from trialkit.domain.roles import Permission, Role
from trialkit.tui.commands import (
    ALLOCATION_LISTS,
    AUDIT_REVIEW,
    CUSTODIANS,
    DASHBOARD,
    DISPENSE_QUEUE,
    PARTICIPANTS,
    UNBLINDINGS,
    USERS,
    Command,
)

if TYPE_CHECKING:
    from trialkit.services.actor import Actor

# The screen each role's journey will open on.
ROLE_WORKSPACE: dict[Role, str] = {
    Role.ADMIN: "Users and allocation lists",
    Role.COORDINATOR: "Participants at your sites",
    Role.PHARMACIST: "Dispense queue",
    Role.INVESTIGATOR: "Investigator dashboard",
    Role.MONITOR: "Audit review, trial status and participants",
}

# The screens each role can open from home, first the role's own workspace if it exists.
ROLE_SCREENS: dict[Role, tuple[Command, ...]] = {
    Role.ADMIN: (USERS, ALLOCATION_LISTS, AUDIT_REVIEW, UNBLINDINGS),
    Role.COORDINATOR: (PARTICIPANTS,),
    Role.PHARMACIST: (DISPENSE_QUEUE, PARTICIPANTS, CUSTODIANS),
    Role.INVESTIGATOR: (DASHBOARD, PARTICIPANTS, CUSTODIANS, AUDIT_REVIEW, UNBLINDINGS),
    # The monitor reads: the audit trail, the status (the dashboard shows no lock or export
    # to those not allowed them) and the participants (no enrolment step is offered).
    Role.MONITOR: (AUDIT_REVIEW, DASHBOARD, PARTICIPANTS, UNBLINDINGS),
}
# Roles whose workspace is the screen they open (the others still wait for theirs).
WORKSPACE_READY = frozenset(
    {Role.ADMIN, Role.COORDINATOR, Role.PHARMACIST, Role.INVESTIGATOR, Role.MONITOR}
)


def describe_role(actor: Actor) -> str:
    """What this user may do, and the keys that open their screens."""
    duties = [p.value for p in Permission if p is not Permission.READ_STATUS and actor.can(p)]
    lines = [f"[b]{ROLE_WORKSPACE[actor.role]}[/b]"]
    if duties:
        lines.append(f"You may {_and_list(duties)}.")
    if actor.role not in WORKSPACE_READY:
        lines.append("[i]This screen will open here in a coming release.[/i]")
    for command in ROLE_SCREENS[actor.role]:
        lines.append(f"Press [b]{command.key}[/b] for {command.title.lower()}.")
    return "\n".join(lines)


def _and_list(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


class RolePanel(Static):
    """The role's workspace and how to open it, titled with the role."""

    def show(self, actor: Actor) -> None:
        """Describe the workspace for this user's role."""
        self.border_title = actor.role.value.capitalize()
        self.update(describe_role(actor))
