"""Identifiers people read aloud and type: participant ids, randomization numbers and
random label codes with a check character (Crockford base 32, mod-37 check)."""

from __future__ import annotations

import secrets

from trialkit.domain.errors import InvalidInput

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
CHECK_ALPHABET = ALPHABET + "*~$=U"
LABEL_BODY = 8


def participant_id(site: str, number: int) -> str:
    return f"{site}-{number:03d}"


def randomization_number(number: int) -> str:
    """Trial-wide, in order of randomization (not of list position)."""
    return f"R{number:04d}"


def _check_char(body: str) -> str:
    value = 0
    for ch in body:
        value = value * 32 + ALPHABET.index(ch)
    return CHECK_ALPHABET[value % 37]


def new_label_code() -> str:
    """A random code such as ``K7MX-Q2PA-T``: unguessable, not sequential, self-checking."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(LABEL_BODY))
    return f"{body[:4]}-{body[4:]}-{_check_char(body)}"


def check_label_code(code: str) -> str:
    """Normalise a typed or scanned label code and verify its check character."""
    raw = code.strip().upper().replace("-", "").replace("O", "0").replace("I", "1")
    raw = raw.replace("L", "1")
    if len(raw) != LABEL_BODY + 1 or any(ch not in ALPHABET for ch in raw[:-1]):
        raise InvalidInput(f"{code!r} is not a label code (like K7MX-Q2PA-T)")
    body, check = raw[:-1], raw[-1]
    if _check_char(body) != check:
        raise InvalidInput(f"label code {code!r}: check character does not match (mistyped?)")
    return f"{body[:4]}-{body[4:]}-{check}"
