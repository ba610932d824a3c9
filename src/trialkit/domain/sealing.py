"""Sealing: the cryptography that keeps allocation concealed and makes tampering visible.

Allocation concealment means nobody who enrols participants can learn or
predict the next arm. The database, a dump of it, every blinded screen and
every log line must be useless for guessing an arm, so:

- each slot of a list is an *envelope*: fixed-length canonical bytes of
  (list id, stratum, sequence number, arm, random salt), encrypted with a
  per-list data key under AES-256-GCM. Every field is padded to a fixed
  width, so envelopes for both arms have identical plaintext and ciphertext
  lengths and the size of a row says nothing. The slot identity is the
  associated data, so an envelope copied to another slot fails to open;
- the data key is wrapped to each unblinded custodian's X25519 public key
  with HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM);
- a custodian's private key is stored only encrypted (AES-256-GCM) under a
  key derived from the custodian's password (``key_wrap.py``);
- each envelope has a *commitment*, SHA-256 of its plaintext. The 16-byte
  random salt in the plaintext stops anyone hashing both candidate arms to
  match a commitment. The commitments' Merkle root, with the list identity
  and the hash of the block policy, forms a *manifest* signed with Ed25519,
  so any later change to any envelope, its order or the procedure shows (the manifests
  themselves are in ``manifests.py``).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trialkit.domain.errors import AuthenticationFailed, IntegrityFailure, InvalidInput
from trialkit.domain.key_wrap import (
    KEY_LEN,
    NONCE_LEN,
    SALT_LEN,
    WrappedKey,
    unwrap_private_bytes,
    wrap_private_bytes,
)

TAG_LEN = 16

_CUSTODIAN_AD = b"trialkit custodian key v1\x00"
_ENVELOPE_AD = b"trialkit envelope v1\x00"
_HPKE_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

# Envelope plaintext layout: magic, then each text field as a 1-byte length and
# a zero-padded fixed width, the sequence number, and the salt.
_MAGIC = b"TKE1"
LIST_ID_WIDTH = 64
STRATUM_WIDTH = 128
ARM_CODE_WIDTH = 32
_SEQ = struct.Struct(">I")
ENVELOPE_PLAINTEXT_LEN = (
    len(_MAGIC)
    + (1 + LIST_ID_WIDTH)
    + (1 + STRATUM_WIDTH)
    + _SEQ.size
    + (1 + ARM_CODE_WIDTH)
    + SALT_LEN
)
ENVELOPE_CIPHERTEXT_LEN = NONCE_LEN + ENVELOPE_PLAINTEXT_LEN + TAG_LEN


# --- custodian keys -------------------------------------------------------------------------

# A custodian's X25519 key pair as stored: public key raw, private key password-wrapped.
CustodianKeys = WrappedKey


def new_custodian_keys(password: str) -> CustodianKeys:
    """A fresh X25519 key pair whose private half is wrapped under ``password``."""
    private_key = X25519PrivateKey.generate()
    return wrap_private_bytes(
        private_key.private_bytes_raw(),
        private_key.public_key().public_bytes_raw(),
        password,
        _CUSTODIAN_AD,
    )


def unwrap_private_key(keys: CustodianKeys, password: str) -> X25519PrivateKey:
    """The custodian's private key; :class:`AuthenticationFailed` if the password is wrong."""
    try:
        raw = unwrap_private_bytes(keys, password, _CUSTODIAN_AD)
    except AuthenticationFailed as err:
        raise AuthenticationFailed("wrong password for the custodian key") from err
    private_key = X25519PrivateKey.from_private_bytes(raw)
    if private_key.public_key().public_bytes_raw() != keys.public_key:
        raise IntegrityFailure("the custodian's private key does not match its public key")
    return private_key


# --- envelopes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvelopeContent:
    """What one sealed envelope says: its slot and the arm allocated there."""

    list_id: str
    stratum: str
    seq: int
    arm_code: str
    salt: bytes


def _pack_text(name: str, value: str, width: int, *, allow_empty: bool = False) -> bytes:
    raw = value.encode("utf-8")
    if not raw and not allow_empty:
        raise InvalidInput(f"the {name} must not be empty")
    if len(raw) > width:
        raise InvalidInput(
            f"the {name} {value!r} is too long for an envelope ({len(raw)} bytes, at most {width})"
        )
    return bytes([len(raw)]) + raw.ljust(width, b"\x00")


def _unpack_text(data: bytes, offset: int, width: int) -> tuple[str, int]:
    length = data[offset]
    body = data[offset + 1 : offset + 1 + width]
    if length > width or any(body[length:]):
        raise IntegrityFailure("envelope plaintext is malformed")
    try:
        return body[:length].decode("utf-8"), offset + 1 + width
    except UnicodeDecodeError as err:
        raise IntegrityFailure("envelope plaintext is malformed") from err


def _pack_slot(list_id: str, stratum: str, seq: int) -> bytes:
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**32:
        raise InvalidInput(f"sequence number {seq} is out of range")
    return (
        _pack_text("list id", list_id, LIST_ID_WIDTH)
        + _pack_text("stratum", stratum, STRATUM_WIDTH, allow_empty=True)
        + _SEQ.pack(seq)
    )


def _plaintext(slot: bytes, packed_arm: bytes, salt: bytes) -> bytes:
    """The one envelope layout: magic, slot, arm, salt."""
    return _MAGIC + slot + packed_arm + salt


def _slot_ad(slot: bytes) -> bytes:
    """The associated data binding a ciphertext to its slot."""
    return _ENVELOPE_AD + slot


def _encrypt(encrypt: Callable[[bytes, bytes, bytes], bytes], slot: bytes, plaintext: bytes,
             nonce: bytes) -> bytes:
    """The one stored form of an envelope: ``nonce || AES-256-GCM(plaintext)``, bound to its
    slot (``encrypt`` is a data key's ``AESGCM(...).encrypt``)."""
    return nonce + encrypt(nonce, plaintext, _slot_ad(slot))


def envelope_plaintext(list_id: str, stratum: str, seq: int, arm_code: str, salt: bytes) -> bytes:
    """Canonical, fixed-length (:data:`ENVELOPE_PLAINTEXT_LEN`) bytes of one envelope."""
    if len(salt) != SALT_LEN:
        raise InvalidInput(f"an envelope salt must be {SALT_LEN} bytes")
    return _plaintext(
        _pack_slot(list_id, stratum, seq), _pack_text("arm code", arm_code, ARM_CODE_WIDTH), salt
    )


class SealedEnvelope(NamedTuple):
    """One envelope as sealing makes it: the hex commitment and the stored ciphertext (the
    rows the database keeps) and its Merkle leaf hash (what the signed root commits to)."""

    commitment: str
    ciphertext: bytes
    leaf: bytes


def envelope_leaf(commitment_raw: bytes, ciphertext: bytes) -> bytes:
    """An envelope's RFC 6962 leaf hash, ``SHA-256(0x00 || commitment || ciphertext)``: the
    manifest's Merkle tree commits to the plaintext commitment and the stored ciphertext, so
    changing either is detected without decrypting."""
    return hashlib.sha256(b"\x00" + commitment_raw + ciphertext).digest()


def seal_envelopes(
    data_key: bytes, list_id: str, stratum: str, first_seq: int, arm_codes: Sequence[str]
) -> list[SealedEnvelope]:
    """Seal a run of slots at once, as :func:`envelope_plaintext` + :func:`seal_envelope`
    would one by one, in order, the same work for each arm."""
    _check_data_key(data_key)
    _pack_slot(list_id, stratum, first_seq + max(len(arm_codes) - 1, 0))  # range check
    encrypt = AESGCM(data_key).encrypt
    sha256 = hashlib.sha256
    seq_pack = _SEQ.pack
    slot_head = _pack_slot(list_id, stratum, 0)[: -_SEQ.size]
    arms = {code: _pack_text("arm code", code, ARM_CODE_WIDTH) for code in set(arm_codes)}
    sealed: list[SealedEnvelope] = []
    step = SALT_LEN + NONCE_LEN
    fresh = os.urandom(step * len(arm_codes))  # one system call, not two per envelope
    at = 0
    for i, arm in enumerate(arm_codes):
        slot = slot_head + seq_pack(first_seq + i)
        salt, nonce = fresh[at : at + SALT_LEN], fresh[at + SALT_LEN : at + step]
        at += step
        plaintext = _plaintext(slot, arms[arm], salt)
        ciphertext = _encrypt(encrypt, slot, plaintext, nonce)
        digest = sha256(plaintext).digest()
        sealed.append(
            SealedEnvelope(digest.hex(), ciphertext, envelope_leaf(digest, ciphertext))
        )
    return sealed


def new_envelope_salt() -> bytes:
    """Sixteen random bytes for :func:`envelope_plaintext`."""
    return os.urandom(SALT_LEN)


def parse_envelope_plaintext(data: bytes) -> EnvelopeContent:
    """Read back :func:`envelope_plaintext`; :class:`IntegrityFailure` if malformed."""
    if len(data) != ENVELOPE_PLAINTEXT_LEN or not data.startswith(_MAGIC):
        raise IntegrityFailure("envelope plaintext is malformed")
    list_id, offset = _unpack_text(data, len(_MAGIC), LIST_ID_WIDTH)
    stratum, offset = _unpack_text(data, offset, STRATUM_WIDTH)
    (seq,) = _SEQ.unpack_from(data, offset)
    arm_code, offset = _unpack_text(data, offset + _SEQ.size, ARM_CODE_WIDTH)
    return EnvelopeContent(list_id, stratum, seq, arm_code, data[offset : offset + SALT_LEN])


def commitment(plaintext: bytes) -> str:
    """SHA-256 hex of an envelope's plaintext (salted, so it does not reveal the arm)."""
    return hashlib.sha256(plaintext).hexdigest()


def new_data_key() -> bytes:
    """A fresh 32-byte AES-256 key for one list."""
    return os.urandom(KEY_LEN)


def _check_data_key(data_key: bytes) -> None:
    if len(data_key) != KEY_LEN:
        raise InvalidInput(f"a list data key must be {KEY_LEN} bytes")


def seal_envelope(data_key: bytes, plaintext: bytes, list_id: str, stratum: str, seq: int) -> bytes:
    """``nonce || AES-256-GCM(plaintext)`` bound to its slot; same length for every arm."""
    _check_data_key(data_key)
    content = parse_envelope_plaintext(plaintext)
    if (content.list_id, content.stratum, content.seq) != (list_id, stratum, seq):
        raise InvalidInput(f"the envelope plaintext is not for {list_id}/{stratum}/{seq}")
    slot = _pack_slot(list_id, stratum, seq)
    return _encrypt(AESGCM(data_key).encrypt, slot, plaintext, os.urandom(NONCE_LEN))


def open_envelope(
    data_key: bytes, ciphertext: bytes, list_id: str, stratum: str, seq: int
) -> bytes:
    """The plaintext of a sealed envelope; :class:`IntegrityFailure` if altered or moved."""
    _check_data_key(data_key)
    ad = _slot_ad(_pack_slot(list_id, stratum, seq))
    try:
        return AESGCM(data_key).decrypt(ciphertext[:NONCE_LEN], ciphertext[NONCE_LEN:], ad)
    except (InvalidTag, ValueError) as err:
        raise IntegrityFailure(
            f"envelope {seq} of list {list_id} (stratum {stratum!r}) fails its integrity check"
        ) from err


def key_info(list_id: str) -> bytes:
    """HPKE ``info`` binding a wrapped data key to its list."""
    return f"trialkit list data key {list_id}".encode()


def wrap_data_key(data_key: bytes, recipient_public_key: bytes, info: bytes) -> bytes:
    """HPKE-seal a list data key to one custodian's raw X25519 public key.

    ``info`` binds the wrap to its context (e.g. list and custodian); unwrap must pass the same.
    """
    _check_data_key(data_key)
    try:
        public_key = X25519PublicKey.from_public_bytes(recipient_public_key)
    except ValueError as err:
        raise InvalidInput("the custodian public key is not a raw X25519 key") from err
    return _HPKE_SUITE.encrypt(data_key, public_key, info=info)


def unwrap_data_key(wrapped: bytes, private_key: X25519PrivateKey, info: bytes) -> bytes:
    """Open :func:`wrap_data_key`; :class:`IntegrityFailure` for a wrong key or altered wrap."""
    try:
        data_key = _HPKE_SUITE.decrypt(wrapped, private_key, info=info)
    except (InvalidTag, ValueError) as err:
        raise IntegrityFailure("the list key cannot be unwrapped with this custodian key") from err
    if len(data_key) != KEY_LEN:
        raise IntegrityFailure("the unwrapped list key has the wrong length")
    return data_key
