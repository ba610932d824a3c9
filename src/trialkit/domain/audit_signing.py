"""Signed audit events: each event a person causes carries their Ed25519 signature over the
event's hash. The hash covers every field of the event and the previous event's hash
(``audit_chain``), so the signature covers them too: an event cannot be edited, forged or
moved to another place in the chain without its author's signing key, which only their
password unlocks.

Which key signs an event is read from the trail itself, never from today's ``user`` row:
a user's public key is the one the latest ``user`` event about them recorded before that
event (``signing_key`` in its state after). A key is introduced by its owner's own event
(activation, the first admin at ``init``, a first sign-in from before signing keys), signed
with the new key; it is replaced only by its owner's event signed with the old key (a
password change); anyone's signed event may withdraw it (a re-issued enrolment)."""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from trialkit.domain.audit_chain import ChainBreak, ChainFields

_CONTEXT = b"trialkit audit event v1\x00"

# The only events recorded without a signature: refused attempts by someone whose key is
# not unlocked (a wrong password, a name that is no account, an enrolment code that does
# not fit, a sign-in refused before its password was checked). A forged one can say only
# that someone failed to sign in; it can never change a signing key.
UNSIGNED_ACTIONS = frozenset({"login.fail", "login.refused", "user.activate_refused"})

# The one event no person causes: the schema upgrade that began signing appends it to a
# trail written before (store migration 0011), as author ``SYSTEM``. The unsigned events
# before it are accepted as that older trail; nothing after it may be unsigned.
SIGNING_BEGINS = "audit.signing_begins"
SYSTEM = "system"


def signed_message(event_hash: str) -> bytes:
    """What an event's signature signs: a fixed context and the event's SHA-256 hash."""
    return _CONTEXT + bytes.fromhex(event_hash)


def sign_event(key: Ed25519PrivateKey, event_hash: str) -> bytes:
    """The author's signature of one event (by its hash)."""
    return key.sign(signed_message(event_hash))


def _recorded_key(fields: ChainFields) -> tuple[bool, bytes | None]:
    """Whether the event records a user's signing key, and which (None: no key)."""
    if fields.entity != "user" or fields.after_json is None:
        return False, None
    try:
        after = json.loads(fields.after_json)
    except ValueError:
        return False, None  # not JSON: the chain's hash check reports it
    if not isinstance(after, dict) or "signing_key" not in after:
        return False, None
    hex_key = after["signing_key"]
    try:
        return True, bytes.fromhex(hex_key) if hex_key else None
    except (TypeError, ValueError):
        return True, b""  # not a key: no signature can match it


# A signature to check: the event's seq, its author, the author's key, the signature and
# what it signs.
_Pending = tuple[int, str, Ed25519PublicKey, bytes, bytes]
_CHUNK = 1024  # signatures per task handed to a worker thread


def _first_failure(chunk: list[_Pending]) -> ChainBreak | None:
    """The first event of ``chunk`` (in trail order) whose signature does not verify."""
    for seq, author, public, signature, message in chunk:
        try:
            public.verify(signature, message)
        except (InvalidSignature, ValueError):
            return ChainBreak(seq, _forged(author))
    return None


def _forged(author: str) -> str:
    return f"its signature does not match {author}'s key: the event was changed or forged"


class SignatureWalk:
    """Checks each event's signature in stored order, holding each user's public key as the
    trail recorded it so far; ``first_break`` is the first event that fails.

    ``workers``: check the signatures themselves (Ed25519, ~0.1 ms each) in that many
    threads, a chunk at a time, while the walk goes on deciding which key signs each event
    (``cryptography`` releases the GIL while OpenSSL verifies). The walk's rules see every
    signature as valid until its chunk is checked; the first break is the earlier of the
    first rule broken and the first signature that fails, the same event the walk would
    stop at checking one by one. With workers, ``first_break`` is final after
    :meth:`finish` (which every walk must reach: it also ends the threads)."""

    def __init__(self, *, workers: int = 0) -> None:
        self._keys: dict[str, bytes] = {}
        self._public: dict[bytes, Ed25519PublicKey | None] = {}
        self._broken: ChainBreak | None = None  # the first rule broken (or inline failure)
        self._signed_seen = False
        self._began = False
        # the first unsigned event of a trail that may be from before signing: a break
        # unless the upgrade's SIGNING_BEGINS follows before any signed event
        self._pending: ChainBreak | None = None
        self._pool = ThreadPoolExecutor(workers) if workers > 0 else None
        self._most_running = 2 * workers  # chunks in flight: bounded memory
        self._chunk: list[_Pending] = []
        self._running: deque[Future[ChainBreak | None]] = deque()
        self._failed: ChainBreak | None = None  # the first signature a worker found failing

    @property
    def first_break(self) -> ChainBreak | None:
        found = [b for b in (self._broken, self._failed) if b is not None]
        return min(found, key=lambda b: b.seq) if found else None

    def key_at(self, user_name: str) -> bytes | None:
        """The public key the trail walked so far records for ``user_name`` (the key valid
        for the next event), or None."""
        return self._keys.get(user_name)

    def step(self, fields: ChainFields, stored_hash: str, signature: bytes | None) -> None:
        """Check one event's signature, then note the key it records."""
        if self.first_break is not None:
            return
        why = self._problem(fields, stored_hash, signature)
        if why is not None:
            self._broken = ChainBreak(fields.seq, why)
        elif signature is not None and self._pending is not None:
            self._broken = self._pending

    def finish(self) -> None:
        """After the last event (or when the walk stops early): every signature handed to
        a worker is checked and the threads end; an unsigned trail that no upgrade marked
        is a break."""
        if self._pool is not None:
            try:
                self._hand_over()
                while self._running:
                    self._collect()
            finally:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
        if self.first_break is None and self._pending is not None:
            self._broken = self._pending

    def _hand_over(self) -> None:
        assert self._pool is not None
        if self._chunk:
            self._running.append(self._pool.submit(_first_failure, self._chunk))
            self._chunk = []
        while len(self._running) > self._most_running:
            self._collect()

    def _collect(self) -> None:
        failed = self._running.popleft().result()
        if failed is not None and (self._failed is None or failed.seq < self._failed.seq):
            self._failed = failed

    def _before_signing(self, fields: ChainFields, new_key: bytes | None) -> str | None:
        """An unsigned event that may belong to a trail from before signing."""
        if self._pending is None:
            self._pending = ChainBreak(
                fields.seq, f"{fields.action} by {fields.user_name} is not signed")
        if new_key:
            self._keys[fields.entity_id] = new_key
        return None

    def _problem(
        self, fields: ChainFields, stored_hash: str, signature: bytes | None
    ) -> str | None:
        author = fields.user_name
        records, new_key = _recorded_key(fields)
        target = fields.entity_id
        old_key = self._keys.get(target) if records else None
        key = self._keys.get(author)
        if fields.action == SIGNING_BEGINS and author == SYSTEM and signature is None:
            if self._signed_seen or self._began:
                return "signing cannot begin after signed events"
            self._began, self._pending = True, None
            return None
        if signature is None:
            if fields.action not in UNSIGNED_ACTIONS:
                if not self._signed_seen and not self._began:
                    return self._before_signing(fields, new_key if records else None)
                return f"{fields.action} by {author} is not signed"
            if records and new_key != old_key:
                return f"an unsigned event changes {target}'s signing key"
            return None
        if key is None and records and target == author and new_key:
            key = new_key  # a key's owner introduces it with an event signed by it
        self._signed_seen = True
        if key is None:
            return f"signed by {author}, who has no signing key at this point of the trail"
        if not self._verifies(fields.seq, author, key, signature, stored_hash):
            return _forged(author)
        if records and new_key != old_key:
            if new_key is not None and target != author:
                return f"{author} set {target}'s signing key: only its owner can"
            if new_key is None:
                self._keys.pop(target, None)
            else:
                self._keys[target] = new_key
        return None

    def _verifies(self, seq: int, author: str, key: bytes, signature: bytes, stored_hash: str
                  ) -> bool:
        """Whether the signature verifies; with workers, True once it is handed over (a
        failure found there is noted for :attr:`first_break`)."""
        if key not in self._public:
            try:
                self._public[key] = Ed25519PublicKey.from_public_bytes(key)
            except ValueError:
                self._public[key] = None
        public = self._public[key]
        if public is None:
            return False
        if self._pool is not None:
            self._chunk.append((seq, author, public, signature, signed_message(stored_hash)))
            if len(self._chunk) >= _CHUNK:
                self._hand_over()
            return True
        try:
            public.verify(signature, signed_message(stored_hash))
        except (InvalidSignature, ValueError):
            return False
        return True
