"""Small AES-256-GCM sealed values under a list's data key: the sealed procedure (block
sizes) and, later, preparation details that differ by arm."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trialkit.domain.errors import IntegrityFailure

NONCE_LEN = 12


def seal_blob(data_key: bytes, data: bytes, context: bytes) -> bytes:
    """Encrypt ``data``; ``context`` (e.g. the list id) is bound as associated data."""
    nonce = os.urandom(NONCE_LEN)
    return nonce + AESGCM(data_key).encrypt(nonce, data, context)


def open_blob(data_key: bytes, sealed: bytes, context: bytes) -> bytes:
    """Decrypt a sealed value, refusing one that was altered or moved."""
    try:
        return AESGCM(data_key).decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], context)
    except (InvalidTag, ValueError):
        raise IntegrityFailure("a sealed value was altered or does not belong here") from None
