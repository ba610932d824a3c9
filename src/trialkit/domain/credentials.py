"""A person's own credentials: the one-time enrolment code an admin hands over, and the
Ed25519 signing key every user makes at activation (stored wrapped under their password,
like a custodian's key, so only they can sign as themselves)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from trialkit.domain.errors import AuthenticationFailed, IntegrityFailure
from trialkit.domain.key_wrap import WrappedKey, unwrap_private_bytes, wrap_private_bytes

ENROLMENT_VALID = timedelta(days=7)
_CODE_BYTES = 15  # 120 bits: 24 base32 characters, read out or typed as six groups of four
_SIGNING_AD = b"trialkit signing key v1\x00"


def new_enrolment_code() -> str:
    """A fresh one-time code, e.g. ``K7QM-D2XW-9P4A-...``; it is shown once, never stored."""
    raw = base64.b32encode(secrets.token_bytes(_CODE_BYTES)).decode("ascii")
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def enrolment_code_hash(code: str) -> str:
    """What is stored of a code: SHA-256 of its canonical form (upper case, no separators).
    A 120-bit random code needs no slow hash: it cannot be guessed from its digest."""
    canonical = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(canonical.encode("ascii", "replace")).hexdigest()


def enrolment_code_matches(code: str, stored_hash: str | None) -> bool:
    """Compare in constant time (False when no code is pending)."""
    return hmac.compare_digest(enrolment_code_hash(code), stored_hash or "-" * 64)


def new_signing_keys(password: str) -> tuple[Ed25519PrivateKey, WrappedKey]:
    """A fresh Ed25519 key pair: the private key (to sign with now) and the pair as stored,
    its private half wrapped under ``password``."""
    private_key = Ed25519PrivateKey.generate()
    return private_key, wrap_private_bytes(
        private_key.private_bytes_raw(),
        private_key.public_key().public_bytes_raw(),
        password,
        _SIGNING_AD,
    )


def unwrap_signing_key(keys: WrappedKey, password: str) -> Ed25519PrivateKey:
    """The user's signing key; :class:`AuthenticationFailed` if the password is wrong."""
    try:
        raw = unwrap_private_bytes(keys, password, _SIGNING_AD)
    except AuthenticationFailed as err:
        raise AuthenticationFailed("wrong password for the signing key") from err
    private_key = Ed25519PrivateKey.from_private_bytes(raw)
    if private_key.public_key().public_bytes_raw() != keys.public_key:
        raise IntegrityFailure("the signing key does not match its public key")
    return private_key


def key_fingerprint(public_key: bytes) -> str:
    """A public key's fingerprint as people compare it aloud: 16 hex digits in groups of 4."""
    digest = hashlib.sha256(public_key).hexdigest()[:16]
    return " ".join(digest[i : i + 4] for i in range(0, 16, 4))
