"""Identifiers people read aloud and type: participant ids, randomization numbers and
random label codes with a check character.

A label code is eight random characters and a check character, all from Crockford's base
32 alphabet (digits and capitals without I, L, O and U), written ``K7MX-Q2PA-4``. The
check character is the Damm check over GF(32): each character is a number 0-31 (its place
in the alphabet), ``interim = 2*interim XOR character`` for each one in turn (the product
is in GF(2^5) modulo x^5 + x^2 + 1), and the check character is ``2*interim``, so that the
same step over all nine characters ends at 0. It is one of the 32 characters itself, and
it catches every mistyped single character and every swap of two neighbours.

Codes made before this scheme ended in a mod-37 check character that could be ``*``,
``~``, ``$``, ``=`` or ``U``; those codes still exist in older databases and are still
accepted where a label code is typed (``check_label_code``)."""

from __future__ import annotations

import secrets

from trialkit.domain.errors import InvalidInput

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
LABEL_BODY = 8
_GF32_REDUCE = 0b100101  # x^5 + x^2 + 1, primitive: 2 generates GF(32)'s 31 non-zero elements
_LEGACY_CHECKS = ALPHABET + "*~$=U"  # the mod-37 check characters of codes made before


def participant_id(site: str, number: int) -> str:
    return f"{site}-{number:03d}"


def randomization_number(number: int) -> str:
    """Trial-wide, in order of randomization (not of list position)."""
    return f"R{number:04d}"


def _times_two(value: int) -> int:
    """2 * value in GF(32)."""
    value <<= 1
    return value ^ _GF32_REDUCE if value & 0b100000 else value


def _interim(chars: str) -> int:
    interim = 0
    for ch in chars:
        interim = _times_two(interim) ^ ALPHABET.index(ch)
    return interim


def check_character(body: str) -> str:
    """The Damm check character of a code's body (characters of ``ALPHABET``)."""
    return ALPHABET[_times_two(_interim(body))]


def _legacy_check_character(body: str) -> str:
    value = 0
    for ch in body:
        value = value * 32 + ALPHABET.index(ch)
    return _LEGACY_CHECKS[value % 37]


def label_code(body: str) -> str:
    """The label code of an 8-character body: ``body[:4]-body[4:]-check``."""
    if len(body) != LABEL_BODY or any(ch not in ALPHABET for ch in body):
        raise ValueError(f"a label code body is {LABEL_BODY} characters of {ALPHABET}")
    return f"{body[:4]}-{body[4:]}-{check_character(body)}"


def new_label_code() -> str:
    """A random code such as ``K7MX-Q2PA-4``: unguessable, not sequential, self-checking."""
    return label_code("".join(secrets.choice(ALPHABET) for _ in range(LABEL_BODY)))


def check_label_code(code: str) -> str:
    """Normalise a typed or scanned label code and verify its check character (O is read
    as 0, I and L as 1). A code made before the Damm check (its mod-37 check character
    may be a symbol) is accepted too, as it was printed."""
    raw = code.strip().upper().replace("-", "").replace(" ", "")
    body = raw[:-1].replace("O", "0").replace("I", "1").replace("L", "1")
    check = raw[-1:]
    if check in "OIL":
        check = check.replace("O", "0").replace("I", "1").replace("L", "1")
    if (len(body) != LABEL_BODY or any(ch not in ALPHABET for ch in body)
            or check not in _LEGACY_CHECKS):
        raise InvalidInput(f"{code!r} is not a label code (like K7MX-Q2PA-4)")
    if check != check_character(body) and check != _legacy_check_character(body):
        raise InvalidInput(f"label code {code!r}: check character does not match (mistyped?)")
    return f"{body[:4]}-{body[4:]}-{check}"
