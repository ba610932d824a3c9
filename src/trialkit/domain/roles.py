"""Roles and what each may do. Blinding rests on this table: only custodians may open
allocation envelopes, and only after database lock may anyone export arms."""

from __future__ import annotations

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

SITE_BOUND_ROLES = frozenset({Role.COORDINATOR, Role.PHARMACIST})


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
