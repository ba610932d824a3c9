"""Who is signed in: name, role, sites, and whether they hold the unblinding key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trialkit.services.actor import Actor


def describe_actor(actor: Actor, every_site: Sequence[str] = ()) -> str:
    """A few lines naming the user, their role and the sites they serve (``actor.scope``,
    the one site-scope rule: a pharmacist given no site serves every site)."""
    lines = [f"[b]{actor.name}[/b]", f"Role: {actor.role.value}"]
    scope = actor.scope
    if scope is not None:
        lines.append(f"Sites: {', '.join(sorted(scope)) or 'none yet'}")
    elif every_site:
        lines.append(f"Sites: all ({', '.join(every_site)})")
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

    def show(self, actor: Actor, every_site: Sequence[str] = ()) -> None:
        """Describe this user (``every_site``: the trial's sites, named when they serve
        all of them)."""
        self.update(describe_actor(actor, every_site))
