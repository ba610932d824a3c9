"""Sealing: custodian keys, envelopes, commitments and signed manifests."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from trialkit.domain import key_wrap, sealing
from trialkit.domain.errors import AuthenticationFailed, IntegrityFailure, InvalidInput
from trialkit.domain.manifests import (
    Manifest,
    fingerprint,
    manifest_bytes,
    merkle_root,
    merkle_root_of,
    new_signing_key,
    sign_manifest,
    verify_manifest,
)
from trialkit.domain.sealing import (
    ENVELOPE_CIPHERTEXT_LEN,
    ENVELOPE_PLAINTEXT_LEN,
    CustodianKeys,
    EnvelopeContent,
    commitment,
    envelope_plaintext,
    new_custodian_keys,
    new_data_key,
    new_envelope_salt,
    open_envelope,
    parse_envelope_plaintext,
    seal_envelope,
    unwrap_data_key,
    unwrap_private_key,
    wrap_data_key,
)

LIST_ID = "L-7f3a9c"
STRATUM = "site=01|sex=F"


@pytest.fixture(scope="module")
def custodian() -> CustodianKeys:
    return new_custodian_keys("correct horse battery staple")


def sealed(key: bytes, seq: int, arm: str) -> tuple[bytes, bytes]:
    plaintext = envelope_plaintext(LIST_ID, STRATUM, seq, arm, new_envelope_salt())
    return plaintext, seal_envelope(key, plaintext, LIST_ID, STRATUM, seq)


# --- custodian keys ---------------------------------------------------------------------------


def test_custodian_key_unwraps_with_the_right_password(custodian: CustodianKeys) -> None:
    private_key = unwrap_private_key(custodian, "correct horse battery staple")
    assert private_key.public_key().public_bytes_raw() == custodian.public_key
    assert len(custodian.public_key) == 32
    assert json.loads(custodian.kdf)["alg"] == "argon2id"


def test_wrong_password_cannot_unwrap_the_custodian_key(custodian: CustodianKeys) -> None:
    with pytest.raises(AuthenticationFailed, match="wrong password for the custodian key"):
        unwrap_private_key(custodian, "Correct horse battery staple")


def test_the_password_is_normalised_the_same_way_as_at_sign_in() -> None:
    """NFKC: a decomposed accent and full-width digits unlock what the composed form wrapped."""
    keys = new_custodian_keys("caf\u00e9 \uff11\uff12 horse")
    assert unwrap_private_key(keys, "cafe\u0301 12 horse").public_key().public_bytes_raw() == (
        keys.public_key
    )


def test_swapping_in_another_public_key_fails(custodian: CustodianKeys) -> None:
    other = X25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(AuthenticationFailed):
        unwrap_private_key(
            dataclasses.replace(custodian, public_key=other), "correct horse battery staple"
        )


def test_scrypt_is_used_where_argon2_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoArgon2:
        def argon2_supported(self) -> bool:
            return False

    monkeypatch.setattr(key_wrap, "_openssl", NoArgon2())
    monkeypatch.setattr(key_wrap, "SCRYPT_PARAMS", {"alg": "scrypt", "n": 2**10, "r": 8, "p": 1})
    keys = new_custodian_keys("pw")
    assert json.loads(keys.kdf)["alg"] == "scrypt"
    assert unwrap_private_key(keys, "pw").public_key().public_bytes_raw() == keys.public_key
    with pytest.raises(AuthenticationFailed):
        unwrap_private_key(keys, "pw2")


def test_empty_custodian_password_is_refused() -> None:
    with pytest.raises(InvalidInput, match="must not be empty"):
        new_custodian_keys("")


def test_malformed_kdf_record_is_an_integrity_failure(custodian: CustodianKeys) -> None:
    with pytest.raises(IntegrityFailure, match="KDF"):
        unwrap_private_key(dataclasses.replace(custodian, kdf="not json"), "x")


# --- envelopes --------------------------------------------------------------------------------


def test_both_arms_give_identical_lengths() -> None:
    key = new_data_key()
    active_plain, active = sealed(key, 1, "ACTIVE")
    placebo_plain, placebo = sealed(key, 2, "P")
    assert len(active_plain) == len(placebo_plain) == ENVELOPE_PLAINTEXT_LEN
    assert len(active) == len(placebo) == ENVELOPE_CIPHERTEXT_LEN


def test_open_returns_what_was_sealed() -> None:
    key = new_data_key()
    plaintext, ciphertext = sealed(key, 42, "A")
    assert open_envelope(key, ciphertext, LIST_ID, STRATUM, 42) == plaintext
    assert len(key) == 32


@pytest.mark.parametrize(
    ("list_id", "stratum", "seq"),
    [(LIST_ID, STRATUM, 43), (LIST_ID, "site=02|sex=F", 42), ("L-other", STRATUM, 42)],
)
def test_envelope_moved_to_another_slot_fails(list_id: str, stratum: str, seq: int) -> None:
    key = new_data_key()
    _, ciphertext = sealed(key, 42, "A")
    with pytest.raises(IntegrityFailure, match="fails its integrity check"):
        open_envelope(key, ciphertext, list_id, stratum, seq)


@pytest.mark.parametrize("position", [0, 11, 12, 100, ENVELOPE_CIPHERTEXT_LEN - 1])
def test_flipped_bit_fails(position: int) -> None:
    key = new_data_key()
    _, ciphertext = sealed(key, 1, "A")
    tampered = bytearray(ciphertext)
    tampered[position] ^= 0x01
    with pytest.raises(IntegrityFailure):
        open_envelope(key, bytes(tampered), LIST_ID, STRATUM, 1)


def test_truncated_envelope_fails() -> None:
    key = new_data_key()
    with pytest.raises(IntegrityFailure):
        open_envelope(key, b"short", LIST_ID, STRATUM, 1)


def test_wrong_data_key_fails() -> None:
    _, ciphertext = sealed(new_data_key(), 1, "A")
    with pytest.raises(IntegrityFailure):
        open_envelope(new_data_key(), ciphertext, LIST_ID, STRATUM, 1)


def test_sealing_a_plaintext_into_another_slot_is_refused() -> None:
    plaintext = envelope_plaintext(LIST_ID, STRATUM, 1, "A", new_envelope_salt())
    with pytest.raises(InvalidInput, match="not for"):
        seal_envelope(new_data_key(), plaintext, LIST_ID, STRATUM, 2)


def test_commitment_is_sha256_of_the_plaintext() -> None:
    plaintext = envelope_plaintext(LIST_ID, STRATUM, 1, "A", bytes(16))
    assert commitment(plaintext) == hashlib.sha256(plaintext).hexdigest()
    # The salt makes equal arms give unrelated commitments.
    other = envelope_plaintext(LIST_ID, STRATUM, 1, "A", bytes(15) + b"\x01")
    assert commitment(other) != commitment(plaintext)


def test_opened_envelope_matches_its_commitment() -> None:
    key = new_data_key()
    plaintext, ciphertext = sealed(key, 5, "B")
    assert commitment(open_envelope(key, ciphertext, LIST_ID, STRATUM, 5)) == commitment(plaintext)


_text = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=100, deadline=None)
@given(
    list_id=_text.filter(lambda s: 0 < len(s.encode()) <= sealing.LIST_ID_WIDTH),
    stratum=_text.filter(lambda s: len(s.encode()) <= sealing.STRATUM_WIDTH),
    seq=st.integers(0, 2**32 - 1),
    arm=_text.filter(lambda s: 0 < len(s.encode()) <= sealing.ARM_CODE_WIDTH),
    salt=st.binary(min_size=16, max_size=16),
)
def test_plaintext_parsing_round_trips(
    list_id: str, stratum: str, seq: int, arm: str, salt: bytes
) -> None:
    plaintext = envelope_plaintext(list_id, stratum, seq, arm, salt)
    assert len(plaintext) == ENVELOPE_PLAINTEXT_LEN
    assert parse_envelope_plaintext(plaintext) == EnvelopeContent(list_id, stratum, seq, arm, salt)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("L" * 65, STRATUM, 1, "A"), "list id 'LLL"),
        ((LIST_ID, "s" * 129, 1, "A"), "stratum"),
        ((LIST_ID, STRATUM, 1, "A" * 33), "arm code"),
        (("é" * 33, STRATUM, 1, "A"), r"66 bytes, at most 64"),
        (("", STRATUM, 1, "A"), "list id must not be empty"),
        ((LIST_ID, STRATUM, 1, ""), "arm code must not be empty"),
        ((LIST_ID, STRATUM, -1, "A"), "sequence number -1 is out of range"),
        ((LIST_ID, STRATUM, 2**32, "A"), "out of range"),
    ],
)
def test_bad_envelope_fields_are_refused(args: tuple[str, str, int, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        envelope_plaintext(*args, new_envelope_salt())


def test_salt_must_be_16_bytes() -> None:
    with pytest.raises(InvalidInput, match="16 bytes"):
        envelope_plaintext(LIST_ID, STRATUM, 1, "A", b"short")


@pytest.mark.parametrize("damage", ["length", "magic", "padding"])
def test_malformed_plaintext_is_an_integrity_failure(damage: str) -> None:
    plaintext = bytearray(envelope_plaintext(LIST_ID, STRATUM, 1, "A", bytes(16)))
    if damage == "length":
        plaintext = plaintext[:-1]
    elif damage == "magic":
        plaintext[0] ^= 0xFF
    else:
        plaintext[4 + 1 + 63] = 0x41  # a byte in the list id's zero padding
    with pytest.raises(IntegrityFailure, match="malformed"):
        parse_envelope_plaintext(bytes(plaintext))


# --- wrapping the list key to custodians ------------------------------------------------------


def test_hpke_wrap_round_trips_and_the_wrong_key_fails() -> None:
    recipient = X25519PrivateKey.generate()
    key = new_data_key()
    info = b"trialkit list L-7f3a9c custodian 3"
    wrapped = wrap_data_key(key, recipient.public_key().public_bytes_raw(), info)
    assert unwrap_data_key(wrapped, recipient, info) == key
    with pytest.raises(IntegrityFailure, match="cannot be unwrapped"):
        unwrap_data_key(wrapped, X25519PrivateKey.generate(), info)
    with pytest.raises(IntegrityFailure):
        unwrap_data_key(wrapped, recipient, b"trialkit list L-other custodian 3")


def test_hpke_wrap_to_the_custodians_stored_key(custodian: CustodianKeys) -> None:
    key = new_data_key()
    wrapped = wrap_data_key(key, custodian.public_key, b"ctx")
    private_key = unwrap_private_key(custodian, "correct horse battery staple")
    assert unwrap_data_key(wrapped, private_key, b"ctx") == key


def test_wrap_refuses_a_bad_public_key() -> None:
    with pytest.raises(InvalidInput, match="X25519"):
        wrap_data_key(new_data_key(), b"too short", b"ctx")


# --- manifests --------------------------------------------------------------------------------


def _manifest() -> Manifest:
    commitments = [
        commitment(envelope_plaintext(LIST_ID, STRATUM, i, "A", bytes(16))) for i in range(7)
    ]
    return Manifest(LIST_ID, STRATUM, 7, "ab" * 32, merkle_root(commitments))


def test_manifest_signature_verifies() -> None:
    private_key, public_raw = new_signing_key()
    manifest = _manifest()
    verify_manifest(public_raw, manifest, sign_manifest(private_key, manifest))


@pytest.mark.parametrize(
    "change",
    [
        {"list_id": "L-other"},
        {"stratum": "site=02|sex=F"},
        {"count": 8},
        {"policy_hash": "cd" * 32},
        {"root": "00" * 32},
    ],
)
def test_changing_any_manifest_field_breaks_the_signature(change: dict[str, Any]) -> None:
    private_key, public_raw = new_signing_key()
    manifest = _manifest()
    signature = sign_manifest(private_key, manifest)
    with pytest.raises(IntegrityFailure, match="manifest signature does not verify for list"):
        verify_manifest(public_raw, dataclasses.replace(manifest, **change), signature)


def test_changed_signature_or_other_key_fails() -> None:
    private_key, public_raw = new_signing_key()
    manifest = _manifest()
    signature = bytearray(sign_manifest(private_key, manifest))
    signature[0] ^= 0x01
    with pytest.raises(IntegrityFailure):
        verify_manifest(public_raw, manifest, bytes(signature))
    with pytest.raises(IntegrityFailure):
        verify_manifest(new_signing_key()[1], manifest, sign_manifest(private_key, manifest))
    with pytest.raises(IntegrityFailure):
        verify_manifest(b"bad key", manifest, sign_manifest(private_key, manifest))


def test_manifest_bytes_are_canonical() -> None:
    manifest = _manifest()
    body = json.loads(manifest_bytes(manifest))
    assert body == {"format": "trialkit-manifest-v1", **dataclasses.asdict(manifest)}
    assert manifest_bytes(manifest) == manifest_bytes(dataclasses.replace(manifest))
    assert b" " not in manifest_bytes(manifest)


def test_merkle_root_follows_rfc6962_and_order_matters() -> None:
    c = [hashlib.sha256(bytes([i])).hexdigest() for i in range(3)]

    def leaf(h: str) -> bytes:
        return hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest()

    def node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + a + b).digest()

    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()
    assert merkle_root(c[:1]) == leaf(c[0]).hex()
    assert merkle_root(c) == node(node(leaf(c[0]), leaf(c[1])), leaf(c[2])).hex()
    assert merkle_root(c) != merkle_root([c[1], c[0], c[2]])
    assert merkle_root(c) != merkle_root(c[:2])


def _rfc6962_root(items: list[bytes]) -> bytes:
    """The tree hash as RFC 6962 section 2.1 defines it, recursively: the reference the
    level-by-level implementation must agree with."""
    if len(items) == 1:
        return hashlib.sha256(b"\x00" + items[0]).digest()
    split = 1 << ((len(items) - 1).bit_length() - 1)
    left, right = _rfc6962_root(items[:split]), _rfc6962_root(items[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


@pytest.mark.parametrize("n", [*range(1, 70), 127, 128, 129, 1000])
def test_merkle_root_equals_the_recursive_rfc6962_definition(n: int) -> None:
    items = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    leaf_hashes = [hashlib.sha256(b"\x00" + item).digest() for item in items]
    assert merkle_root_of(leaf_hashes) == _rfc6962_root(items).hex()
    assert merkle_root([i.hex() for i in items]) == _rfc6962_root(items).hex()


def test_merkle_root_refuses_a_non_commitment() -> None:
    with pytest.raises(InvalidInput, match="not a SHA-256 commitment"):
        merkle_root(["xyz"])
    with pytest.raises(InvalidInput):
        merkle_root(["AB" * 32])  # commitments are lower-case hex


def test_fingerprint_is_short_and_grouped() -> None:
    _, public_raw = new_signing_key()
    printed = fingerprint(public_raw)
    assert printed.replace(" ", "") == hashlib.sha256(public_raw).hexdigest()[:16]
    assert [len(group) for group in printed.split(" ")] == [4, 4, 4, 4]


def test_sealing_a_run_at_once_gives_envelopes_that_open_to_their_own_slot_and_arm() -> None:
    from trialkit.domain.sealing import seal_envelopes

    key = new_data_key()
    arms = ["KET", "PLA", "PLA", "KET"]
    sealed = seal_envelopes(key, "list-1", "TWH-CM", 7, arms)
    assert len({len(e.ciphertext) for e in sealed}) == 1
    for i, (digest, ciphertext, leaf) in enumerate(sealed):
        plaintext = open_envelope(key, ciphertext, "list-1", "TWH-CM", 7 + i)
        content = parse_envelope_plaintext(plaintext)
        assert (content.list_id, content.stratum, content.seq, content.arm_code) == (
            "list-1", "TWH-CM", 7 + i, arms[i],
        )
        assert commitment(plaintext) == digest
        assert leaf == hashlib.sha256(b"\x00" + bytes.fromhex(digest) + ciphertext).digest()
    with pytest.raises(IntegrityFailure):
        open_envelope(key, sealed[0].ciphertext, "list-1", "TWH-CM", 8)
