"""A private key stored only wrapped under its owner's password: AES-256-GCM under a key
derived from the (normalised) password with Argon2id (Scrypt where the OpenSSL build lacks
Argon2). Every personal key of trialkit is stored this way: a custodian's X25519 key and every
user's Ed25519 signing key. The public key and a purpose label are the associated data, so
a wrapped key cannot be moved to another public key or used for another purpose."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.backends.openssl.backend import backend as _openssl
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from trialkit.domain.errors import AuthenticationFailed, IntegrityFailure, InvalidInput
from trialkit.domain.passwords import password_bytes

KEY_LEN = 32
NONCE_LEN = 12
SALT_LEN = 16

# Argon2id at the OWASP minimum (19 MiB, 2 passes, 1 lane); Scrypt fallback per OWASP too.
ARGON2ID_PARAMS: dict[str, Any] = {"alg": "argon2id", "m": 19456, "t": 2, "p": 1}
SCRYPT_PARAMS: dict[str, Any] = {"alg": "scrypt", "n": 2**17, "r": 8, "p": 1}


@dataclass(frozen=True)
class WrappedKey:
    """A key pair as stored: public key raw, private key password-wrapped.

    ``wrapped_private_key`` is ``nonce || AES-256-GCM(raw private key)``; ``kdf`` is
    canonical JSON naming the KDF, its parameters and the base64 salt.
    """

    public_key: bytes
    wrapped_private_key: bytes
    kdf: str


def _new_kdf_params() -> dict[str, Any]:
    params = ARGON2ID_PARAMS if _openssl.argon2_supported() else SCRYPT_PARAMS
    return {**params, "salt": base64.b64encode(os.urandom(SALT_LEN)).decode("ascii")}


def derive_wrapping_key(password: str, kdf: str) -> bytes:
    """The AES key a password gives under stored KDF parameters."""
    try:
        params = json.loads(kdf)
        salt = base64.b64decode(params["salt"], validate=True)
        if params["alg"] == "argon2id":
            return Argon2id(
                salt=salt,
                length=KEY_LEN,
                iterations=int(params["t"]),
                lanes=int(params["p"]),
                memory_cost=int(params["m"]),
            ).derive(password_bytes(password))
        if params["alg"] == "scrypt":
            return Scrypt(
                salt=salt,
                length=KEY_LEN,
                n=int(params["n"]),
                r=int(params["r"]),
                p=int(params["p"]),
            ).derive(password_bytes(password))
    except (ValueError, KeyError, TypeError) as err:
        raise IntegrityFailure("a stored key's KDF parameters are malformed") from err
    raise IntegrityFailure(f"unknown KDF {params['alg']!r} for a stored key")


def wrap_private_bytes(
    private_raw: bytes, public_raw: bytes, password: str, purpose: bytes
) -> WrappedKey:
    """Wrap raw private key bytes under ``password`` with a fresh salt."""
    if not password:
        raise InvalidInput("a password must not be empty")
    kdf = json.dumps(_new_kdf_params(), sort_keys=True, separators=(",", ":"))
    nonce = os.urandom(NONCE_LEN)
    sealed = AESGCM(derive_wrapping_key(password, kdf)).encrypt(
        nonce, private_raw, purpose + public_raw
    )
    return WrappedKey(public_key=public_raw, wrapped_private_key=nonce + sealed, kdf=kdf)


def unwrap_private_bytes(keys: WrappedKey, password: str, purpose: bytes) -> bytes:
    """The raw private key; :class:`AuthenticationFailed` if the password is wrong."""
    wrapping_key = derive_wrapping_key(password, keys.kdf)
    nonce, sealed = keys.wrapped_private_key[:NONCE_LEN], keys.wrapped_private_key[NONCE_LEN:]
    try:
        return AESGCM(wrapping_key).decrypt(nonce, sealed, purpose + keys.public_key)
    except InvalidTag as err:
        # The tag also covers the public key, so a tampered record lands here too.
        raise AuthenticationFailed("wrong password for the stored key") from err
    except ValueError as err:
        raise IntegrityFailure("a wrapped key is malformed") from err


WRAPPED_LEN = NONCE_LEN + 32 + 16  # nonce, a 32-byte X25519 or Ed25519 private key, GCM tag


def stored_key_problem(
    kdf: str | None, wrapped: bytes | None, *, length: int = WRAPPED_LEN
) -> str | None:
    """What is wrong with a stored wrapped key, or None: its KDF must be exactly the one
    trialkit uses (Argon2id at the OWASP minimum, or the Scrypt fallback) with a 16-byte salt
    (weaker parameters written into the database would make a password cheap to guess), and
    the wrapped key must have the length of a wrapped 32-byte key (``length``: another
    secret's wrapped length)."""
    if kdf is None or wrapped is None:
        return "half of it is missing"
    try:
        params = json.loads(kdf)
        salt = base64.b64decode(params.pop("salt"), validate=True)
    except (ValueError, KeyError, TypeError, AttributeError):
        return "its KDF parameters are malformed"
    if params not in (ARGON2ID_PARAMS, SCRYPT_PARAMS):
        return f"its KDF parameters are not trialkit's: {json.dumps(params, sort_keys=True)}"
    if len(salt) != SALT_LEN:
        return f"its KDF salt has {len(salt)} bytes, not {SALT_LEN}"
    if len(wrapped) != length:
        return f"the wrapped key has {len(wrapped)} bytes, not {length}"
    return None
