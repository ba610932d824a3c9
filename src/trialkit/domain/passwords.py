"""Passwords: one normalisation, one strength rule, one hash.

- Every password is normalised to Unicode NFKC before it is hashed, checked or used to derive
  a key, so the same password typed on different keyboards (composed or decomposed accents,
  full-width digits) signs in and unlocks the same keys.
- A new password must be at least 12 characters and survive zxcvbn, a maintained strength
  estimator that knows common passwords, dictionary words, keyboard patterns, repeats, dates
  and l33t substitutions (score 3 of 4: about 10^8 guesses or more), with the person's name
  and the trial counted as things an attacker would try first.
- Stored as Argon2id with OWASP's minimum parameters, PHC-encoded so they travel with the
  hash and can be raised later without invalidating stored passwords."""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Sequence
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
MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable", about 10^8 guesses or more
# zxcvbn's running time grows with the length; beyond this many characters only the
# first ones are scored (a long passphrase is not weak because of its tail).
_SCORED_LENGTH = 100
UNUSABLE = "!"  # stored for an account with no password yet; no password ever matches it


def normalise(password: str) -> str:
    """The one form of a password that is hashed, checked and turned into keys."""
    return unicodedata.normalize("NFKC", password)


def password_bytes(password: str) -> bytes:
    return normalise(password).encode("utf-8")


def check_new_password(password: str, *, context: Sequence[str] = ()) -> None:
    """Refuse a password that is too short, too long, or easy to guess (common passwords,
    patterns, the person's own name or the trial's in ``context``)."""
    text = normalise(password)
    if len(text) < MIN_LENGTH:
        raise InvalidInput(f"password too short: at least {MIN_LENGTH} characters, please")
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"password too long: at most {MAX_LENGTH} characters")
    from zxcvbn import zxcvbn  # imported when needed: its word lists take a moment to load

    result = zxcvbn(text[:_SCORED_LENGTH], user_inputs=[c for c in context if c])
    if int(result["score"]) < MIN_SCORE:
        feedback = result.get("feedback") or {}
        hint = str(feedback.get("warning") or "").strip()
        why = f" ({hint.rstrip('.')})" if hint else ""
        raise InvalidInput(
            f"password too easy to guess{why}: use a few unrelated words or a longer phrase"
        )


def hash_password(password: str) -> str:
    """Hash a password for storage (PHC string)."""
    kdf = Argon2id(
        salt=secrets.token_bytes(16),
        length=32,
        iterations=ITERATIONS,
        lanes=LANES,
        memory_cost=MEMORY_KIB,
    )
    return kdf.derive_phc_encoded(password_bytes(password))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(24))


def verify_password(password: str, stored: str | None) -> bool:
    """Check a password in constant time; for an unknown user (``stored=None``) or an account
    with no password yet (:data:`UNUSABLE`) the same work is done against a dummy hash, so
    timing does not reveal which names exist or which accounts are set up."""
    usable = stored is not None and stored != UNUSABLE
    target = stored if usable and stored is not None else _dummy_hash()
    try:
        Argon2id.verify_phc_encoded(password_bytes(password), target)
    except InvalidKey:
        return False
    return usable
