"""Roles and what each may do. Blinding rests on this table: only custodians may open
allocation envelopes, and only after database lock may anyone export arms."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from trialkit.domain.errors import InvalidInput


class Role(StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    PHARMACIST = "pharmacist"
    INVESTIGATOR = "investigator"
    MONITOR = "monitor"


class Permission(StrEnum):
    MANAGE_USERS = "manage users"
    SEAL_LISTS = "seal allocation lists"
    ENROL = "enrol participants"
    RECORD_DIARY = "record diary days"
    DISPENSE = "open allocation envelopes"
    UNBLIND = "emergency-unblind"
    LOCK = "lock the database"
    EXPORT = "export data"
    READ_AUDIT = "read the audit log"
    READ_STATUS = "read trial status"
    MAINTAIN_DATABASE = "back up and upgrade the database"


_BASE = frozenset({Permission.READ_STATUS})

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: _BASE | {Permission.MANAGE_USERS, Permission.SEAL_LISTS, Permission.READ_AUDIT,
                        Permission.MAINTAIN_DATABASE},
    Role.COORDINATOR: _BASE | {Permission.ENROL, Permission.RECORD_DIARY},
    Role.PHARMACIST: _BASE | {Permission.DISPENSE, Permission.UNBLIND},
    Role.INVESTIGATOR: _BASE | {Permission.LOCK, Permission.EXPORT, Permission.READ_AUDIT},
    Role.MONITOR: _BASE | {Permission.READ_AUDIT},
}

# Permissions that additionally need the custodian flag (investigators may be custodians).
CUSTODIAN_PERMISSIONS = frozenset({Permission.UNBLIND})

# Roles whose users work at named sites. A coordinator always does (with no site: at none);
# a pharmacist may (with no site: a central pharmacy, serving every site).
SITE_BOUND_ROLES = frozenset({Role.COORDINATOR, Role.PHARMACIST})


def site_scope(role: Role, sites: Iterable[str]) -> frozenset[str] | None:
    """The sites a user may act on and see participants of, or None for every site: the one
    site-scope rule (enrolment, the diary, the pharmacy, the status report)."""
    mine = frozenset(sites)
    if role is Role.COORDINATOR or (role in SITE_BOUND_ROLES and mine):
        return mine
    return None


def works_at(role: Role, sites: Iterable[str], site: str) -> bool:
    """Whether a user of this role with these sites may act on ``site``'s participants."""
    scope = site_scope(role, sites)
    return scope is None or site in scope


def parse_role(text: str) -> Role:
    """Turn user input into a Role, or say which roles exist."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {text!r}: choose one of {names}") from None


def has_permission(role: Role, custodian: bool, permission: Permission) -> bool:
    """Whether a user of this role (and custodian flag) holds the permission."""
    if permission in CUSTODIAN_PERMISSIONS and role is Role.INVESTIGATOR:
        return custodian
    return permission in ROLE_PERMISSIONS[role]
