"""Who is acting, and the permission check every service starts with."""

from __future__ import annotations

from dataclasses import dataclass

from trialkit.domain.errors import PermissionDenied
from trialkit.domain.roles import Permission, Role, has_permission, site_scope, works_at


@dataclass(frozen=True)
class Actor:
    """A signed-in user as services see them."""

    user_id: int
    name: str
    role: Role
    sites: frozenset[str]
    custodian: bool

    def can(self, permission: Permission) -> bool:
        return has_permission(self.role, self.custodian, permission)

    @property
    def scope(self) -> frozenset[str] | None:
        """The sites whose participants this user may see and act on; None: every site
        (``domain.roles.site_scope``)."""
        return site_scope(self.role, self.sites)

    def works_at(self, site: str) -> bool:
        """Whether this user may act on ``site``'s participants."""
        return works_at(self.role, self.sites, site)


def require_site(actor: Actor, site: str) -> None:
    """Refuse (exit 1) a user acting on a site outside their scope."""
    if not actor.works_at(site):
        mine = ", ".join(sorted(actor.sites)) or "none"
        raise PermissionDenied(f"{actor.name} works at {mine}, not at {site}")


def require(actor: Actor, permission: Permission) -> None:
    """Refuse (exit 1) with a message naming the missing permission."""
    if not actor.can(permission):
        raise PermissionDenied(
            f"{actor.name} ({actor.role.value}) lacks the permission to {permission.value}"
        )


# The actor of the events made while creating a trial, before the first admin's account
# exists: those events carry that admin's name (they ran init), with this actor's role.
SYSTEM = Actor(user_id=0, name="system", role=Role.ADMIN, sites=frozenset(), custodian=False)
