"""Who is signed in: name, role, sites, and whether they hold the unblinding key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

from trialkit.domain.roles import SITE_BOUND_ROLES

if TYPE_CHECKING:
    from trialkit.services.actor import Actor


def describe_actor(actor: Actor) -> str:
    """A few lines naming the user, their role and where they work."""
    lines = [f"[b]{actor.name}[/b]", f"Role: {actor.role.value}"]
    if actor.role in SITE_BOUND_ROLES:
        lines.append(f"Sites: {', '.join(sorted(actor.sites)) or 'none yet'}")
    else:
        lines.append("Sites: all")
    if actor.custodian:
        lines.append("Unblinding custodian")
    return "\n".join(lines)


class IdentityPanel(Static):
    """The signed-in user, in a bordered panel titled "You"."""

    def on_mount(self) -> None:
        """Title the panel."""
        self.border_title = "You"

    def show(self, actor: Actor) -> None:
        """Describe this user."""
        self.update(describe_actor(actor))
