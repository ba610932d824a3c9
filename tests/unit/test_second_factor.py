"""The TOTP check against RFC 6238's published test vectors (Appendix B, HMAC-SHA1, seed
"12345678901234567890"). The RFC lists 8-digit codes; a 6-digit code is the same number
mod 10^6 (RFC 4226 section 5.3), i.e. the table's last six digits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trialkit.domain import second_factor as totp
from trialkit.domain.errors import AuthenticationFailed

RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of b"12345678901234567890"

# (Unix time, 8-digit TOTP) from RFC 6238 Appendix B, SHA1 column.
RFC_6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.mark.parametrize(("seconds", "code8"), RFC_6238_SHA1)
def test_the_rfc_6238_test_vectors_are_accepted_in_their_own_step(
    seconds: int, code8: str
) -> None:
    assert totp.accepted_step(RFC_SECRET, code8[-6:], _at(seconds), after=None) == seconds // 30


@pytest.mark.parametrize(("seconds", "code8"), RFC_6238_SHA1)
def test_a_code_is_accepted_one_step_late_but_not_two(seconds: int, code8: str) -> None:
    step = seconds // 30
    assert totp.accepted_step(RFC_SECRET, code8[-6:], _at(seconds + 30), after=None) == step
    assert totp.accepted_step(RFC_SECRET, code8[-6:], _at(seconds + 60), after=None) is None
    if seconds >= 60:
        assert totp.accepted_step(RFC_SECRET, code8[-6:], _at(seconds - 60), after=None) is None


def test_a_code_of_a_step_already_accepted_is_never_accepted_again() -> None:
    seconds, code8 = RFC_6238_SHA1[1]
    step = seconds // 30
    assert totp.accepted_step(RFC_SECRET, code8[-6:], _at(seconds), after=step - 1) == step
    assert totp.accepted_step(RFC_SECRET, code8[-6:], _at(seconds), after=step) is None
    assert totp.accepted_step(RFC_SECRET, code8[-6:], _at(seconds), after=step + 1) is None


@pytest.mark.parametrize("bad", ["", "28708", "2870820", "abcdef", "287 08x", "２８７０８２"])
def test_anything_but_six_ascii_digits_is_refused(bad: str) -> None:
    assert totp.accepted_step(RFC_SECRET, bad, _at(59), after=None) is None


def test_spaces_inside_a_typed_code_are_ignored() -> None:
    assert totp.accepted_step(RFC_SECRET, "287 082", _at(59), after=None) == 1


def test_the_secret_is_stored_only_wrapped_and_only_its_owners_password_opens_it() -> None:
    wrapped = totp.wrap_secret(RFC_SECRET, "correct-horse-battery")
    assert b"12345678901234567890" not in wrapped.wrapped_private_key
    assert RFC_SECRET.encode() not in wrapped.wrapped_private_key + wrapped.kdf.encode()
    assert totp.unwrap_secret(wrapped.wrapped_private_key, wrapped.kdf,
                              "correct-horse-battery") == RFC_SECRET
    with pytest.raises(AuthenticationFailed):
        totp.unwrap_secret(wrapped.wrapped_private_key, wrapped.kdf, "correct-horse-batterY")


def test_the_provisioning_uri_names_the_user_the_trial_and_rfc_defaults() -> None:
    uri = totp.provisioning_uri(RFC_SECRET, user="pia", trial="KETHEAD")
    assert uri.startswith("otpauth://totp/trialkit%20KETHEAD:pia?")
    assert f"secret={RFC_SECRET}" in uri and "issuer=trialkit%20KETHEAD" in uri
    assert totp.new_secret() != totp.new_secret() and len(totp.new_secret()) == 32
