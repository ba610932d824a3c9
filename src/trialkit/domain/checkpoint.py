"""Signed audit checkpoints: a small file, kept outside the database, that records how many
events the audit trail held and the hash of the last one, signed with its writer's Ed25519
key. No database involved here: the format, signing, reading a file and checking a
signature.

Someone holding the database can rewrite the whole chain and recompute every hash, but
cannot change a checkpoint that is kept elsewhere, nor sign a new one as its writer without
that person's password: the chain's event at a checkpoint's count must still have the
checkpoint's head hash."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from trialkit.domain.audit_chain import canonical_json
from trialkit.domain.errors import InvalidInput

FORMAT = "trialkit audit checkpoint 1"
_CONTEXT = b"trialkit audit checkpoint v1\x00"  # what is signed starts with this
MAX_BYTES = 64 * 1024  # a checkpoint is well under 1 KiB; a larger file is not one
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file holds (``signature`` covers every other field)."""

    trial: str  # the trial's code
    first_event: str  # hash of the trial's first audit event: which trial, beyond its code
    events: int  # how many events the trail held
    head: str  # the hash of event number ``events``
    at: datetime  # when it was written (the time its own audit event carries)
    signer: str  # the user who wrote it
    role: str
    public_key: str  # the signer's Ed25519 public key, hex
    signature: str  # Ed25519 signature, hex

    def signed_fields(self) -> dict[str, Any]:
        """Every field but the signature, as the file holds them."""
        fields = asdict(self)
        fields.pop("signature")
        fields["at"] = self.at.astimezone(UTC).isoformat(timespec="microseconds")
        return {"format": FORMAT} | fields

    def document(self) -> dict[str, Any]:
        """The file's JSON object."""
        return self.signed_fields() | {"signature": self.signature}

    def text(self) -> str:
        """The file's text: indented JSON, one field a line, for a reader."""
        return json.dumps(self.document(), indent=2, ensure_ascii=True) + "\n"


def _message(fields: dict[str, Any]) -> bytes:
    return _CONTEXT + canonical_json(fields).encode("utf-8")


def sign_checkpoint(
    key: Ed25519PrivateKey,
    *,
    trial: str,
    first_event: str,
    events: int,
    head: str,
    at: datetime,
    signer: str,
    role: str,
) -> Checkpoint:
    """A checkpoint of ``events`` events ending at ``head``, signed with ``key``."""
    public = key.public_key().public_bytes_raw().hex()
    unsigned = Checkpoint(trial, first_event, events, head, at.astimezone(UTC), signer, role,
                          public, "")
    signature = key.sign(_message(unsigned.signed_fields())).hex()
    return Checkpoint(**(asdict(unsigned) | {"signature": signature}))


def signature_holds(checkpoint: Checkpoint) -> bool:
    """Whether the signature is the one its public key made over its other fields."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(checkpoint.public_key))
        key.verify(bytes.fromhex(checkpoint.signature), _message(checkpoint.signed_fields()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _field(doc: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInput(f"{where}: not a trialkit checkpoint (field {name!r} is missing "
                           "or of the wrong kind)")
    return value


def parse_checkpoint(data: bytes, where: str) -> Checkpoint:
    """Read a checkpoint file's bytes (``where`` names it in messages). Anything that is
    not a well-formed checkpoint is bad input (exit 2) in one line; whether its signature
    holds is :func:`signature_holds`."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"{where}: not a trialkit checkpoint (over {MAX_BYTES // 1024} KiB)")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidInput(f"{where}: not a trialkit checkpoint (not JSON)") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{where}: not a trialkit checkpoint (not a JSON object)")
    if doc.get("format") != FORMAT:
        raise InvalidInput(f"{where}: not a trialkit checkpoint (format is not {FORMAT!r})")
    known = {"format", "signature", *Checkpoint.__dataclass_fields__}
    extra = sorted(set(doc) - known)
    if extra:
        raise InvalidInput(f"{where}: not a trialkit checkpoint (unknown field {extra[0]!r})")
    text = {name: _field(doc, name, str, where)
            for name in ("trial", "first_event", "head", "at", "signer", "role", "public_key",
                         "signature")}
    events = _field(doc, "events", int, where)
    if events < 1:
        raise InvalidInput(f"{where}: not a trialkit checkpoint (events must be 1 or more)")
    for name, pattern in (("first_event", _HEX64), ("head", _HEX64), ("public_key", _HEX64),
                          ("signature", _HEX128)):
        if not pattern.fullmatch(text[name]):
            raise InvalidInput(f"{where}: not a trialkit checkpoint (field {name!r} is not "
                               "lower-case hex of the right length)")
    try:
        at = datetime.fromisoformat(text["at"])
    except ValueError:
        raise InvalidInput(f"{where}: not a trialkit checkpoint (field 'at' is not a "
                           "time)") from None
    if at.tzinfo is None:
        raise InvalidInput(f"{where}: not a trialkit checkpoint (field 'at' has no time zone)")
    return Checkpoint(
        trial=text["trial"], first_event=text["first_event"], events=events,
        head=text["head"], at=at.astimezone(UTC), signer=text["signer"], role=text["role"],
        public_key=text["public_key"], signature=text["signature"],
    )
