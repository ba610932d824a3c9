"""Free text people type (reasons, names, lot numbers, form versions, file names) and how
anything is printed back. A control character (a line break, ESC, a bidirectional override)
in stored text could forge a line in ``audit log`` or run escape sequences on the reader's
terminal: input refuses them, output escapes them."""

from __future__ import annotations

import unicodedata

from trialkit.domain.errors import InvalidInput

# The longest reason (withdrawal, correction, unblinding, disabling) a person may give.
REASON_MAX = 1000

# Bidirectional embeddings, overrides and isolates reorder what a reader sees.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def is_control(char: str) -> bool:
    """A character that moves or recolours what a terminal shows instead of showing itself:
    C0/C1 controls (newline, tab, ESC, DEL...), line and paragraph separators, bidi
    controls."""
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI


def plain_text(value: str, what: str, *, max_len: int | None = None) -> str:
    """``value`` stripped of surrounding spaces, or InvalidInput (exit 2) naming ``what``
    if it holds a control character or is longer than ``max_len``."""
    bad = next((c for c in value if is_control(c)), None)
    if bad is not None:
        raise InvalidInput(
            f"{what}: control characters such as a line break, a tab or ESC are not allowed "
            f"(found U+{ord(bad):04X})"
        )
    text = value.strip()
    if max_len is not None and len(text) > max_len:
        raise InvalidInput(f"{what} is too long ({len(text)} characters, at most {max_len})")
    return text


def optional_text(value: str | None, what: str, *, max_len: int | None = None) -> str | None:
    """:func:`plain_text` for an optional field: None or blank gives None."""
    if value is None:
        return None
    return plain_text(value, what, max_len=max_len) or None


def printable(value: str) -> str:
    """``value`` with every control character shown as an escape (``\\n``, ``\\x1b``,
    ``\\u202e``) so printing it can neither forge a line nor drive the terminal."""
    if not any(is_control(c) for c in value):
        return value
    return "".join(
        c.encode("unicode_escape").decode("ascii") if is_control(c) else c for c in value
    )
