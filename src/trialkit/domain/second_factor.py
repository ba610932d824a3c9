"""A custodian's second factor: a time-based one-time code (TOTP, RFC 6238) from an
authenticator app, computed with the maintained ``pyotp`` library.

The shared secret is stored only wrapped under a key derived from its owner's password,
exactly as their private keys are (``key_wrap``): a copy of the database gives nobody the
secret. A code is accepted for its own 30-second step or one step either side (a phone's
clock drifts), and only for a step later than the last one accepted (RFC 6238 section 5.2:
a code is never accepted twice)."""

from __future__ import annotations

import base64
import hmac
from datetime import datetime

import pyotp

from trialkit.domain.key_wrap import (
    NONCE_LEN,
    WrappedKey,
    unwrap_private_bytes,
    wrap_private_bytes,
)

DIGITS = 6
STEP_SECONDS = 30
DRIFT_STEPS = 1  # steps either side of the current one that still count
SECRET_BYTES = 20  # 160 bits, the length RFC 4226 section 4 recommends (32 base32 letters)
_PURPOSE = b"trialkit totp secret v1\x00"
WRAPPED_LEN = NONCE_LEN + SECRET_BYTES + 16  # nonce, the secret, the GCM tag


def new_secret() -> str:
    """A fresh shared secret in base32, as authenticator apps take it."""
    return pyotp.random_base32(length=SECRET_BYTES * 8 // 5)


def provisioning_uri(secret: str, *, user: str, trial: str) -> str:
    """The ``otpauth://totp/...`` URI an app scans (issuer: trialkit and the trial)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=user, issuer_name=f"trialkit {trial}"
    )


def _normalised(code: str) -> str | None:
    digits = "".join(code.split())
    return digits if len(digits) == DIGITS and digits.isascii() and digits.isdigit() else None


def accepted_step(secret: str, code: str, at: datetime, *, after: int | None) -> int | None:
    """The time step ``code`` belongs to if it is right at ``at`` (within the drift) and
    later than step ``after`` (the last accepted), else None. Compared in constant time."""
    given = _normalised(code or "")
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    now_step = totp.timecode(at)
    found = None
    for offset in range(-min(DRIFT_STEPS, now_step), DRIFT_STEPS + 1):
        expected = totp.at(at, counter_offset=offset)
        if hmac.compare_digest(expected, given or "-" * DIGITS) and found is None:
            found = now_step + offset
    if found is None or (after is not None and found <= after):
        return None
    return found


def wrap_secret(secret: str, password: str) -> WrappedKey:
    """The secret as stored, wrapped under ``password`` (its ``public_key`` is empty)."""
    raw = base64.b32decode(secret.upper())
    return wrap_private_bytes(raw, b"", password, _PURPOSE)


def unwrap_secret(wrapped: bytes, kdf: str, password: str) -> str:
    """The secret in base32; :class:`AuthenticationFailed` if the password is wrong."""
    raw = unwrap_private_bytes(WrappedKey(b"", wrapped, kdf), password, _PURPOSE)
    return base64.b32encode(raw).decode("ascii")


def terminal_qr(uri: str) -> str:
    """The URI as a QR code drawn with block characters, for a terminal (dark on light)."""
    import io

    import segno

    out = io.StringIO()
    segno.make_qr(uri, error="M").terminal(out=out, compact=True, border=2)
    return out.getvalue()
