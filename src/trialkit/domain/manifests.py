"""Manifests: what is signed for each sealed list, so any later change to an envelope, its
order or the sealed procedure shows.

A list's envelopes are the leaves of an RFC 6962 Merkle tree (leaf = SHA-256(0x00 ||
commitment || ciphertext), see :func:`trialkit.domain.sealing.envelope_leaf`); the root,
with the list's identity, count and the hash of its sealed procedure, is the manifest,
signed with a one-time Ed25519 key whose fingerprint is printed and audited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from trialkit.domain.errors import IntegrityFailure, InvalidInput


def _commitment_bytes(commitment_hex: str) -> bytes:
    try:
        raw = bytes.fromhex(commitment_hex)
    except ValueError:
        raw = b""
    if len(raw) != 32 or commitment_hex != raw.hex():
        raise InvalidInput(f"{commitment_hex!r} is not a SHA-256 commitment")
    return raw


def merkle_root_of(leaf_hashes: Sequence[bytes]) -> str:
    """RFC 6962 Merkle tree hash (hex) over leaf hashes already made (``SHA-256(0x00 ||
    item)``, see :func:`envelope_leaf`); nodes are ``SHA-256(0x01 || left || right)`` and
    the empty tree hashes to ``SHA-256("")``. A tree, not a running hash, so an extended list
    can later prove it kept the old envelopes as a prefix.

    Built bottom up, a level at a time; a level's odd last node moves up unchanged, which
    gives exactly the RFC 6962 tree (left subtrees are the largest powers of two)."""
    if not leaf_hashes:
        return hashlib.sha256(b"").hexdigest()
    sha256 = hashlib.sha256
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def merkle_root(commitments: Sequence[str]) -> str:
    """RFC 6962 Merkle tree hash (hex) of hex commitments in order: leaves are
    ``SHA-256(0x00 || commitment)``."""
    leaves = [hashlib.sha256(b"\x00" + _commitment_bytes(c)).digest() for c in commitments]
    return merkle_root_of(leaves)


@dataclass(frozen=True)
class Manifest:
    """What is signed for one list of one stratum."""

    list_id: str
    stratum: str
    count: int
    policy_hash: str
    root: str


_MANIFEST_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def manifest_bytes(manifest: Manifest) -> bytes:
    """Canonical JSON of a manifest (sorted keys, no spaces, format tag): what is signed."""
    body = {
        "format": "trialkit-manifest-v1",
        "list_id": manifest.list_id,
        "stratum": manifest.stratum,
        "count": manifest.count,
        "policy_hash": manifest.policy_hash,
        "root": manifest.root,
    }
    return _MANIFEST_JSON.encode(body).encode()


def new_signing_key() -> tuple[Ed25519PrivateKey, bytes]:
    """A fresh Ed25519 key pair: the private key and the raw 32-byte public key."""
    private_key = Ed25519PrivateKey.generate()
    return private_key, private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def sign_manifest(private_key: Ed25519PrivateKey, manifest: Manifest) -> bytes:
    """Ed25519 signature over :func:`manifest_bytes`."""
    return private_key.sign(manifest_bytes(manifest))


def verify_manifest(public_key_raw: bytes, manifest: Manifest, signature: bytes) -> None:
    """Return quietly if ``signature`` is valid, else raise :class:`IntegrityFailure`."""
    failure = IntegrityFailure(
        f"manifest signature does not verify for list {manifest.list_id} "
        f"(stratum {manifest.stratum!r})"
    )
    try:
        Ed25519PublicKey.from_public_bytes(public_key_raw).verify(
            signature, manifest_bytes(manifest)
        )
    except (InvalidSignature, ValueError) as err:
        raise failure from err


def fingerprint(public_key_raw: bytes) -> str:
    """Short human form of a public key: first 16 hex digits of its SHA-256, in fours."""
    digest = hashlib.sha256(public_key_raw).hexdigest()[:16]
    return " ".join(digest[i : i + 4] for i in range(0, 16, 4))
