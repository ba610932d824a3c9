"""Who is acting, and the permission check every service starts with."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
    # Their Ed25519 signing key, unlocked by the sign-in's password: every audit event they
    # cause is signed with it (domain.audit_signing). Held only as long as the actor.
    signing_key: Ed25519PrivateKey | None = field(default=None, compare=False, repr=False)

    def signing_with(self, key: Ed25519PrivateKey) -> Actor:
        """The same person holding their (new) unlocked signing key."""
        return replace(self, signing_key=key)

    def without_key(self) -> Actor:
        """The same person with their signing key put away (a locked screen)."""
        return replace(self, signing_key=None)

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
