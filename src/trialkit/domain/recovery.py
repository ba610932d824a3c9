"""The trial's recovery key: an X25519 key pair made at trial creation. Every list key is
wrapped to its public half too; its private half exists only on a printed recovery sheet for
the sponsor's safe, as 24 words of the BIP-39 English word list (256 bits and an 8-bit
checksum, so a mistyped or missing word is caught) and the same words as a QR code. It is
never stored: whoever holds the sheet can restore custody when every custodian is gone."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from mnemonic import Mnemonic

from trialkit.domain.credentials import key_fingerprint
from trialkit.domain.errors import InvalidInput

WORDS = 24
_BIP39 = Mnemonic("english")


@dataclass(frozen=True)
class RecoveryKey:
    """A new recovery key: the public half to store, the words to print once."""

    public_key: bytes
    words: str

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_key)


def new_recovery_key() -> RecoveryKey:
    """A fresh key pair; its private key is the 32 bytes the words encode."""
    private = X25519PrivateKey.generate()
    words = _BIP39.to_mnemonic(private.private_bytes_raw())
    return RecoveryKey(private.public_key().public_bytes_raw(), words)


def normal_words(text: str) -> str:
    """The words as typed or read from a sheet: any case, spacing, line breaks or numbering
    ("1. sense 2. brass ..."), NFKD as BIP-39 says."""
    words = [w for w in unicodedata.normalize("NFKD", text).lower().split() if w.isalpha()]
    return " ".join(words)


def recovery_private_key(text: str) -> X25519PrivateKey:
    """The private key the sheet's words encode; :class:`InvalidInput` naming what is wrong
    (how many words, an unknown word, a failed checksum)."""
    words = normal_words(text).split()
    if len(words) != WORDS:
        raise InvalidInput(f"a recovery sheet has {WORDS} words; {len(words)} were given")
    unknown = [w for w in words if w not in _BIP39.wordlist]
    if unknown:
        raise InvalidInput(f"{unknown[0]!r} is not a word of the recovery sheet's word list")
    phrase = " ".join(words)
    if not _BIP39.check(phrase):
        raise InvalidInput("the recovery words do not check: a word is mistyped or out of order")
    return X25519PrivateKey.from_private_bytes(bytes(_BIP39.to_entropy(phrase)))


_NUMBERED = re.compile(r"(?<![\w.])(\d{1,2})\.\s+([A-Za-z]+)")


def words_on_sheet(text: str) -> str:
    """The words of a recovery sheet's text, found by their numbers ("1. sense ... 24. stool")
    in number order; the rest of the sheet (title, instructions) is ignored."""
    found = {int(n): w.lower() for n, w in _NUMBERED.findall(text)}
    if sorted(found) != list(range(1, WORDS + 1)):
        raise InvalidInput(
            f"this file does not hold the {WORDS} numbered words of a recovery sheet"
        )
    return " ".join(found[i] for i in range(1, WORDS + 1))


def sheet_lines(words: str) -> list[str]:
    """The words numbered in four columns of six, read down each column."""
    listed = words.split()
    rows = WORDS // 4
    return [
        "   ".join(f"{c * rows + r + 1:>2}. {listed[c * rows + r]:<9}" for c in range(4)).rstrip()
        for r in range(rows)
    ]
