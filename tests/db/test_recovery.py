"""The recovery key and what verify checks of custody: every list key is wrapped to the
trial's recovery key too, whose private half exists only as the 24 words of the recovery
sheet; `custodian recover` hands the list keys to an approved custodian from the sheet
(audited, the words never recorded); deleting key grants or the recovery wrapping, wrapping
a key to someone nobody approved, or weakening a stored key's KDF is caught by verify.
On both backends."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlmodel import select

from trialkit.domain.errors import InvalidInput, Refused
from trialkit.domain.protocol import load_protocol
from trialkit.domain.recovery import new_recovery_key, recovery_private_key, words_on_sheet
from trialkit.domain.roles import Role
from trialkit.domain.sealing import CustodianKeys, unwrap_private_key
from trialkit.services.actor import Actor
from trialkit.services.administration.custody import approve_custodian, recover_custody
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.users import set_disabled
from trialkit.services.enrolment.allocation import extend_list
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AllocationList, AuditEvent, ListKeyGrant, Trial, User

from ..builders import seal
from ..conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user, sign_in
from .tampering import attack, rehearse, verify, verify_on
from .test_custody import HPKE, STRATA, events, grants, read_out, user

# The BIP-39 English word list, as published with the standard (2048 words, one a line).
BIP39_ENGLISH = (Path(__import__("mnemonic").__file__).parent / "wordlist" / "english.txt")


def list_key(wrapped: bytes, key: X25519PrivateKey, list_id: str) -> bytes:
    """Open an HPKE-wrapped list key directly with cryptography (not trialkit's code)."""
    return HPKE.decrypt(wrapped, key, info=f"trialkit list data key {list_id}".encode())


def custodian_key(engine: Engine, name: str, password: str = PASSWORD) -> X25519PrivateKey:
    u = user(engine, name)
    assert u.public_key and u.wrapped_private_key and u.key_kdf
    return unwrap_private_key(CustodianKeys(u.public_key, u.wrapped_private_key, u.key_kdf),
                              password)


def wrapped_lists(engine: Engine) -> list[tuple[str, bytes | None]]:
    with read_only(engine) as s:
        return [(lst.id, lst.recovery_key) for lst in s.exec(select(AllocationList))]


def grant_of(engine: Engine, list_id: str, name: str) -> bytes:
    with read_only(engine) as s:
        uid = s.exec(select(User.id).where(User.name == name)).one()
        grant = s.get(ListKeyGrant, (list_id, uid))
        assert grant is not None
        return grant.wrapped_key


@pytest.fixture
def recovery(db_url: str, clock: SteppingClock) -> tuple[Engine, str]:
    """A trial made as `init` makes it, with the words of its recovery sheet."""
    engine = make_engine(db_url, must_exist=False)
    made = initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
                      training=False, clock=clock)
    yield engine, made.words
    engine.dispose()


@pytest.fixture
def sealed(recovery: tuple[Engine, str], clock: SteppingClock) -> tuple[Engine, str]:
    """phil approved (by quinn, an investigator), lists sealed and one extended."""
    engine, words = recovery
    admin = sign_in(engine, ADMIN, clock)
    add_user(engine, admin, clock, "phil", Role.PHARMACIST)
    seal(engine, admin, clock, per_stratum=4)
    with transaction(engine) as s:
        extend_list(s, admin, stratum="TWH-CM", count=2, block_sizes=None, clock=clock)
    return engine, words


def test_the_sheet_holds_24_words_of_the_published_list_and_its_key_is_the_trials(
    recovery: tuple[Engine, str]
) -> None:
    engine, words = recovery
    published = BIP39_ENGLISH.read_text(encoding="utf-8").split()
    assert len(published) == 2048
    assert len(words.split()) == 24 and all(w in published for w in words.split())
    # 24 words of 11 bits: 256 bits of key and an 8-bit checksum
    bits = "".join(f"{published.index(w):011b}" for w in words.split())
    raw = int(bits[:256], 2).to_bytes(32, "big")
    with read_only(engine) as s:
        trial = s.get(Trial, 1)
        assert trial is not None
        stored = trial.recovery_public_key
    key = X25519PrivateKey.from_private_bytes(raw)
    assert key.public_key().public_bytes_raw() == stored
    with read_only(engine) as s:  # the words are stored nowhere
        for column in ("before_json", "after_json", "reason"):
            for value in s.exec(select(getattr(AuditEvent, column))):
                assert words not in (value or "")


def test_every_list_segment_is_wrapped_to_the_recovery_key_too(
    sealed: tuple[Engine, str]
) -> None:
    engine, words = sealed
    sheet_key = recovery_private_key(words)
    phil = custodian_key(engine, "phil")
    segments = wrapped_lists(engine)
    assert len(segments) == STRATA + 1
    for list_id, wrapped in segments:
        assert wrapped is not None
        assert list_key(wrapped, sheet_key, list_id) == list_key(
            grant_of(engine, list_id, "phil"), phil, list_id)
    assert verify(engine).ok


def test_custody_is_restored_from_the_sheet_when_every_custodian_is_gone(
    sealed: tuple[Engine, str], clock: SteppingClock
) -> None:
    engine, words = sealed
    admin = sign_in(engine, ADMIN, clock)
    with transaction(engine) as s:
        set_disabled(s, admin, name="phil", disabled=True, reason="left the trial", clock=clock)
    add_user(engine, admin, clock, "newt", Role.PHARMACIST, approve=False)
    quinn = sign_in(engine, "quinn", clock)
    # No custodian is left, but an investigator's word alone no longer approves anyone
    # (else an admin could disable the team and approve a pharmacist of their own).
    with pytest.raises(Refused, match="approves only the first custodian"), \
            transaction(engine) as s:
        approve_custodian(s, quinn, name="newt", fingerprint=read_out(engine, "newt"),
                          password=PASSWORD, clock=clock)
    numbered = "\n".join(f"{i}. {w}" for i, w in enumerate(words.split(), 1))
    with transaction(engine) as s:
        done = recover_custody(s, quinn, name="newt", fingerprint=read_out(engine, "newt"),
                               words=words_on_sheet(numbered), clock=clock)
    assert (done.custodian, done.lists) == ("newt", STRATA + 1)
    assert user(engine, "newt").custodian_approved_by == "quinn with the recovery sheet"
    newt, phil = custodian_key(engine, "newt"), custodian_key(engine, "phil")
    for list_id, _wrapped in wrapped_lists(engine):
        assert list_key(grant_of(engine, list_id, "newt"), newt, list_id) == list_key(
            grant_of(engine, list_id, "phil"), phil, list_id)
    assert [e.entity_id for e in events(engine, "custodian.approve")] == ["phil", "newt"]
    [event] = events(engine, "custody.recover")
    assert (event.user_name, event.entity_id) == ("quinn", "newt")
    assert json.loads(event.after_json or "{}")["lists_wrapped"] == STRATA + 1
    assert verify(engine).ok


def test_another_trials_sheet_is_refused_and_audited(
    sealed: tuple[Engine, str], clock: SteppingClock
) -> None:
    engine, _words = sealed
    admin = sign_in(engine, ADMIN, clock)
    add_user(engine, admin, clock, "pia", Role.PHARMACIST)
    before = grants(engine, "pia")
    quinn = sign_in(engine, "quinn", clock)
    with pytest.raises(Refused, match="not the recovery sheet of this trial"), \
            transaction(engine) as s:
        recover_custody(s, quinn, name="pia", fingerprint=read_out(engine, "pia"),
                        words=new_recovery_key().words, clock=clock)
    assert grants(engine, "pia") == before
    [refusal] = events(engine, "custody.recover.refused")
    assert (refusal.user_name, refusal.entity_id) == ("quinn", "pia")


@pytest.mark.parametrize("who", [ADMIN, "cora"])
def test_neither_an_admin_nor_a_coordinator_restores_custody(
    sealed: tuple[Engine, str], clock: SteppingClock, who: str
) -> None:
    engine, words = sealed
    admin = sign_in(engine, ADMIN, clock)
    add_user(engine, admin, clock, "cora", Role.COORDINATOR, sites=["TWH"])
    actor: Actor = sign_in(engine, who, clock)
    with pytest.raises(Refused, match="cannot restore custody"), transaction(engine) as s:
        recover_custody(s, actor, name="phil", fingerprint=read_out(engine, "phil"),
                        words=words, clock=clock)
    assert [e.user_name for e in events(engine, "custody.recover.refused")] == [who]


@settings(max_examples=20, deadline=None)
@given(index=st.integers(0, 23), other=st.integers(0, 2047))
def test_a_mistyped_word_is_caught_by_the_checksum_or_the_word_list(
    index: int, other: int
) -> None:
    made = new_recovery_key()
    published = BIP39_ENGLISH.read_text(encoding="utf-8").split()
    words = made.words.split()
    words[index] = published[other]
    typed = " ".join(words)
    try:
        key = recovery_private_key(typed)
    except InvalidInput:
        return
    # the 8-bit checksum lets about 1 in 256 wrong words through; then it is another key
    assert typed == made.words or key.public_key().public_bytes_raw() != made.public_key


# --- what verify sees ------------------------------------------------------------------------


def test_deleting_key_grants_is_caught(sealed: tuple[Engine, str]) -> None:
    engine, _words = sealed
    with rehearse(engine) as conn:
        conn.execute(text("DELETE FROM list_key_grant"))
        report = verify_on(conn)
    assert not report.ok
    assert re.search(r"(no custodian holds its key|phil holds no key)", report.problem or "")


def test_deleting_the_recovery_wrapping_is_caught(sealed: tuple[Engine, str]) -> None:
    engine, _words = sealed
    with rehearse(engine) as conn:
        conn.execute(text("UPDATE allocation_list SET recovery_key = NULL "
                          "WHERE stratum_code = 'SHS-CM'"))
        report = verify_on(conn)
    assert not report.ok
    assert "SHS-CM" in (report.problem or "") and "recovery" in (report.problem or "")


def test_a_list_key_wrapped_to_someone_nobody_approved_is_caught(
    sealed: tuple[Engine, str], clock: SteppingClock
) -> None:
    engine, _words = sealed
    admin = sign_in(engine, ADMIN, clock)
    add_user(engine, admin, clock, "eve", Role.PHARMACIST, approve=False)
    eve = user(engine, "eve")
    with rehearse(engine) as conn:
        for list_id, _wrapped in wrapped_lists(engine):
            conn.execute(text("INSERT INTO list_key_grant (list_id, user_id, wrapped_key) "
                              "VALUES (:l, :u, :k)"),
                         {"l": list_id, "u": eve.id, "k": grant_of(engine, list_id, "phil")})
        report = verify_on(conn)
    assert not report.ok and "eve, whom nobody approved" in (report.problem or "")


@pytest.mark.parametrize("weaker", [
    {"alg": "argon2id", "m": 8, "t": 1, "p": 1},
    {"alg": "scrypt", "n": 2, "r": 1, "p": 1},
])
def test_weakened_kdf_parameters_of_a_stored_key_are_caught(
    sealed: tuple[Engine, str], weaker: dict[str, object]
) -> None:
    engine, _words = sealed
    kdf = json.loads(user(engine, "phil").key_kdf or "{}")
    with rehearse(engine) as conn:
        conn.execute(text("UPDATE app_user SET key_kdf = :k WHERE name = 'phil'"),
                     {"k": json.dumps(weaker | {"salt": kdf["salt"]})})
        report = verify_on(conn)
    assert not report.ok and "KDF parameters are not trialkit's" in (report.problem or "")


def test_an_untouched_trial_verifies(sealed: tuple[Engine, str]) -> None:
    engine, _words = sealed
    with attack(engine):
        pass
    assert verify(engine).ok
