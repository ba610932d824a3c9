"""Password hashing: Argon2id with OWASP's minimum parameters, PHC-encoded so they travel
with the hash and can be raised later without invalidating stored passwords."""

from __future__ import annotations

import secrets
from functools import lru_cache

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from trialkit.domain.errors import InvalidInput

# OWASP Password Storage Cheat Sheet (2025): Argon2id, m=19 MiB, t=2, p=1.
MEMORY_KIB = 19456
ITERATIONS = 2
LANES = 1
MIN_LENGTH = 12
MAX_LENGTH = 1024


def check_new_password(password: str) -> None:
    """Refuse a password that is too short or too long to be a sensible secret."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"password too short: at least {MIN_LENGTH} characters, please")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"password too long: at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    """Hash a password for storage (PHC string)."""
    kdf = Argon2id(
        salt=secrets.token_bytes(16),
        length=32,
        iterations=ITERATIONS,
        lanes=LANES,
        memory_cost=MEMORY_KIB,
    )
    return kdf.derive_phc_encoded(password.encode("utf-8"))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(24))


def verify_password(password: str, stored: str | None) -> bool:
    """Check a password in constant time; with ``stored=None`` (unknown user) the same
    work is done against a dummy hash, so timing does not reveal which names exist."""
    target = stored if stored is not None else _dummy_hash()
    try:
        Argon2id.verify_phc_encoded(password.encode("utf-8"), target)
    except InvalidKey:
        return False
    return stored is not None
