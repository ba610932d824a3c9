"""Opening a participant's sealed envelope (list checked, commitment re-checked, every
opening audited without its arm), and the preparation details sealed under the list's data
key, padded to a length fixed by the protocol so the stored row is the same size whichever
arm it hides. The blinding rules are those of ``dispensing``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from trialkit.domain.audit_chain import canonical_json
from trialkit.domain.clock import Clock
from trialkit.domain.errors import IntegrityFailure, NextStep, Refused
from trialkit.domain.protocol import Protocol
from trialkit.domain.sealed_blob import open_blob, seal_blob
from trialkit.domain.sealing import (
    ARM_CODE_WIDTH,
    commitment,
    key_info,
    open_envelope,
    parse_envelope_plaintext,
    unwrap_data_key,
)
from trialkit.services.actor import Actor
from trialkit.services.administration.custody import custodian_private_key
from trialkit.services.integrity import audit
from trialkit.services.integrity.list_verification import check_list
from trialkit.services.pharmacy.checks import LOT_MAX
from trialkit.store.models import AllocationList, Envelope, ListKeyGrant, Participant

# Sealed preparation details are padded to a multiple of this, after the longest content
# any arm could give, so their length says nothing about the arm.
_PAD_BLOCK = 64
_LEN_BYTES = 2


class EnvelopeBroken(IntegrityFailure):
    """An envelope failed its checks when opened; the failure is audited."""

    keep_record = True


@dataclass(frozen=True)
class OpenedEnvelope:
    envelope: Envelope
    arm_code: str
    data_key: bytes


# --- opening an envelope ---------------------------------------------------------------------


def _envelope(session: Session, p: Participant) -> Envelope:
    env = session.exec(select(Envelope).where(Envelope.participant_id == p.id)).first()
    if env is None:
        raise IntegrityFailure(f"{p.id} is randomized but no envelope is bound to them")
    return env


class Unsealer:
    """Opens envelopes for one custodian: their key is unlocked once (the password KDF is
    the cost), each list key unwrapped once and each list checked once, however many
    envelopes are opened (an unblinded export opens every one). Writes nothing: the caller
    records each opening (:func:`opening`) and each broken envelope (:func:`broken_record`)."""

    def __init__(self, session: Session, actor: Actor, password: str, protocol: Protocol) -> None:
        self.session, self.actor, self.protocol = session, actor, protocol
        self.private = custodian_private_key(session, actor, password)
        self._keys: dict[str, bytes] = {}
        self._list_problems: dict[str, str | None] = {}

    def data_key(self, env: Envelope) -> bytes:
        key = self._keys.get(env.list_id)
        if key is None:
            grant = self.session.get(ListKeyGrant, (env.list_id, self.actor.user_id))
            if grant is None:
                raise Refused(
                    f"{self.actor.name} holds no key to the list of {env.stratum_code}: a "
                    "second person approves them first, which hands it over",
                    next_step=NextStep("approve-custodian", self.actor.name)
                )
            key = unwrap_data_key(grant.wrapped_key, self.private, key_info(env.list_id))
            self._keys[env.list_id] = key
        return key

    def _list_problem(self, env: Envelope) -> str | None:
        if env.list_id not in self._list_problems:
            lst = self.session.get(AllocationList, env.list_id)
            problem = "its list is missing" if lst is None else check_list(self.session, lst)
            self._list_problems[env.list_id] = None if problem is None else f"its list: {problem}"
        return self._list_problems[env.list_id]

    def arm(self, env: Envelope) -> tuple[str | None, str | None]:
        """(the arm, None) if the envelope passes every check, else (None, the problem)."""
        data_key = self.data_key(env)
        problem = self._list_problem(env)
        if problem is not None:
            return None, problem
        try:
            plaintext = open_envelope(data_key, env.ciphertext, env.list_id, env.stratum_code,
                                      env.seq)
            content = parse_envelope_plaintext(plaintext)
        except IntegrityFailure as err:
            return None, err.message
        if commitment(plaintext) != env.commitment:
            return None, "its commitment does not match"
        if (content.list_id, content.stratum, content.seq) != (env.list_id, env.stratum_code,
                                                                env.seq):
            return None, "it names another slot"
        if content.arm_code not in self.protocol.arm_codes:
            return None, "it names no arm of this protocol"
        return content.arm_code, None


def envelope_of(session: Session, p: Participant) -> Envelope:
    """The envelope bound to a randomized participant."""
    return _envelope(session, p)


def opening(env: Envelope, p: Participant, purpose: str) -> audit.Change:
    """The audit event of an envelope opened (no arm)."""
    return audit.Change("envelope.open", "envelope", f"{env.stratum_code}#{env.seq}",
                        after={"participant": p.id, "list": env.list_id, "purpose": purpose})


def broken_record(env: Envelope, p: Participant, problem: str) -> audit.Change:
    """The audit event of an envelope that failed its checks."""
    return audit.Change("envelope.broken", "envelope", f"{env.stratum_code}#{env.seq}",
                        after={"participant": p.id, "list": env.list_id}, reason=problem)


def broken_error(env: Envelope, p: Participant, problem: str) -> EnvelopeBroken:
    return EnvelopeBroken(
        f"the envelope of {p.id} ({env.stratum_code} #{env.seq}) fails its checks: {problem}; "
        "it was not used. Tell the trial's data manager"
    )


def envelope_broken(
    session: Session, actor: Actor, env: Envelope, p: Participant, problem: str, clock: Clock
) -> EnvelopeBroken:
    audit.record_many(session, actor, [broken_record(env, p, problem)], clock=clock)
    return broken_error(env, p, problem)


def open_allocation(
    session: Session,
    actor: Actor,
    p: Participant,
    *,
    password: str,
    purpose: str,
    protocol: Protocol,
    clock: Clock,
) -> OpenedEnvelope:
    """Unwrap the list key with the actor's own key, check the list and decrypt only this
    participant's envelope, re-checking its commitment; audit the opening (no arm)."""
    env = _envelope(session, p)
    unsealer = Unsealer(session, actor, password, protocol)
    arm, problem = unsealer.arm(env)
    if arm is None:
        raise envelope_broken(session, actor, env, p, problem or "unreadable", clock)
    audit.record_many(session, actor, [opening(env, p, purpose)], clock=clock)
    return OpenedEnvelope(env, arm, unsealer.data_key(env))


# --- sealed preparation details --------------------------------------------------------------


def _details_size(protocol: Protocol) -> int:
    """Padded size of the sealed details: what the longest arm code and lots would take,
    rounded up. Depends on the protocol only, never on the arm."""
    widest = {"v": 1, "arm": "X" * ARM_CODE_WIDTH,
              "lots": {p.id: "X" * LOT_MAX for p in protocol.dosing.preparations}}
    longest = _LEN_BYTES + len(canonical_json(widest).encode())
    return -(-longest // _PAD_BLOCK) * _PAD_BLOCK


def seal_details(
    protocol: Protocol, data_key: bytes, pid: str, arm_code: str, lots: Mapping[str, str]
) -> bytes:
    """A preparation's arm and lots sealed under its list's data key, padded to the
    protocol's fixed size (the stored row is the same length whichever arm it hides)."""
    body = canonical_json({"v": 1, "arm": arm_code, "lots": dict(lots)}).encode()
    size = _details_size(protocol)
    padded = len(body).to_bytes(_LEN_BYTES, "big") + body
    return seal_blob(data_key, padded.ljust(size, b"\x00"), pid.encode())


def open_sealed_details(data_key: bytes, sealed: bytes, pid: str) -> dict[str, Any]:
    padded = open_blob(data_key, sealed, pid.encode())
    length = int.from_bytes(padded[:_LEN_BYTES], "big")
    try:
        details = json.loads(padded[_LEN_BYTES : _LEN_BYTES + length])
    except ValueError:
        raise IntegrityFailure(f"the sealed preparation details of {pid} are malformed") from None
    if not isinstance(details, dict):
        raise IntegrityFailure(f"the sealed preparation details of {pid} are malformed")
    return details
