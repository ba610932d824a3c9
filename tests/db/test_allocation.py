"""Sealed allocation lists as the admin and the custodians use them: sealing exactly the
envelopes asked for, refusing what must be refused, extending a stratum without touching
what exists, handing the list keys to a new custodian, and catching every change made to
a list behind trialkit's back.

Each module builds its trial once per backend (``World``); each test works in a ``Box``,
a window on that trial whose changes are rolled back when the test ends. Transactions in
a box behave as ``store.db.transaction``: kept on success, undone on an error."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, func
from sqlmodel import Session, col, select

from tests.builders import PROTOCOL, SeededRandom, baseline_in, eligible_answers, seal, staff
from tests.conftest import (
    ADMIN,
    BACKENDS,
    KETHEAD,
    PASSWORD,
    SteppingClock,
    add_user,
    empty_database,
    enrol,
    sign_in,
)
from trialkit.domain.errors import (
    AuthenticationFailed,
    InvalidInput,
    PermissionDenied,
    Refused,
    TrialkitError,
)
from trialkit.domain.manifests import (
    Manifest,
    new_signing_key,
    sign_manifest,
)
from trialkit.domain.procedures import flatten, generate_blocks
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.domain.sealing import (
    CustodianKeys,
    EnvelopeContent,
    key_info,
    open_envelope,
    parse_envelope_plaintext,
    unwrap_data_key,
    unwrap_private_key,
)
from trialkit.domain.strata import all_strata
from trialkit.services.actor import Actor
from trialkit.services.administration.custody import (
    CustodyRefused,
    approve_custodian,
    grant_custodian,
    lists_held,
)
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import login
from trialkit.services.enrolment.allocation import (
    SealResult,
    StratumUse,
    extend_list,
    seal_lists,
    stratum_usage,
)
from trialkit.services.enrolment.participants import (
    ParticipantView,
    Randomization,
    consent,
    randomize,
    screen,
)
from trialkit.services.integrity import verification
from trialkit.services.integrity.list_verification import ListCheck, verify_lists
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AllocationList, AuditEvent, Envelope, ListKeyGrant, User

STRATA = tuple(s.code for s in all_strata(PROTOCOL))  # TWH-CM, TWH-CDH, SHS-CM, SHS-CDH
ENVELOPES = Envelope.__table__  # type: ignore[attr-defined]
LISTS = AllocationList.__table__  # type: ignore[attr-defined]


# --- the trial each module works on, and each test's window on it ---------------------------


@dataclass(frozen=True)
class World:
    """The KetHead trial with alice (admin), phil (pharmacist), cora (coordinator at TWH
    and SHS) and tess (coordinator at TWH) signed in; lists sealed when asked for."""

    engine: Engine
    backend: str
    at: datetime
    actors: Mapping[str, Actor]


@contextmanager
def build_world(backend: str, folder: Path, *, per_stratum: int | None) -> Iterator[World]:
    with empty_database(backend, folder) as url:
        engine = make_engine(url, must_exist=False)
        clock = SteppingClock()
        initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
                   training=False, clock=clock)
        alice = sign_in(engine, ADMIN, clock)
        actors = {ADMIN: alice, **staff(engine, alice, clock)}
        if per_stratum is not None:
            seal(engine, alice, clock, per_stratum)
        clock.advance(minutes=1)
        try:
            yield World(engine, backend, clock.now(), actors)
        finally:
            engine.dispose()


class Box:
    """One test's window on a world. Everything done through it is rolled back when the
    test ends, so every test starts from the same trial."""

    def __init__(self, world: World, conn: Connection) -> None:
        self.world = world
        self.conn = conn
        self.clock = SteppingClock(world.at)
        self.private_keys: dict[str, X25519PrivateKey] = {}

    def actor(self, name: str) -> Actor:
        return self.world.actors[name]

    def tx(self) -> AbstractContextManager[Session]:
        """A unit of work, as the application makes one, on a savepoint of this box."""
        return transaction(self.conn)

    def count(self, model: Any, *where: Any) -> int:
        with self.tx() as s:
            return int(s.exec(select(func.count()).select_from(model).where(*where)).one())

    def events(self, action: str) -> list[AuditEvent]:
        with self.tx() as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(col(AuditEvent.seq))).all())

    # what the people in the trial do

    def seal(self, per_stratum: int, *, seed: int | None = 7, by: str = ADMIN,
             block_sizes: list[int] | None = None) -> SealResult:
        with self.tx() as s:
            return seal_lists(s, self.actor(by), per_stratum=per_stratum,
                              block_sizes=block_sizes, clock=self.clock,
                              rng=None if seed is None else SeededRandom(seed))

    def extend(self, stratum: str, count: int, *, by: str = ADMIN) -> SealResult:
        with self.tx() as s:
            return extend_list(s, self.actor(by), stratum=stratum, count=count,
                               block_sizes=None, clock=self.clock, rng=SeededRandom(11))

    def screen(self, *, by: str = "cora", site: str = "TWH", headache_type: str = "CM",
               unanswered: tuple[str, ...] = (), **changes: Any) -> ParticipantView:
        """Screen someone eligible in every respect but the ``changes``."""
        answers = eligible_answers() | changes.pop("answers", {})
        answers = {k: v for k, v in answers.items() if k not in unanswered}
        given: dict[str, Any] = {"age": 40, "sex": "F", "weight_kg": 70.0,
                                 "factors": {"headache_type": headache_type},
                                 "answers": answers} | changes
        with self.tx() as s:
            return screen(s, self.actor(by), site=site, clock=self.clock, **given)

    def consent(self, pid: str, *, by: str = "cora") -> ParticipantView:
        with self.tx() as s:
            return consent(s, self.actor(by), pid, on=self.clock.now().date(),
                           form_version="2.0", clock=self.clock)

    def consented(self, *, by: str = "cora", site: str = "TWH") -> str:
        """Screen someone eligible and record their consent today (the diary starts there);
        their id."""
        pid = self.screen(by=by, site=site).id
        self.consent(pid, by=by)
        return pid

    def randomize(self, pid: str, *, by: str = "cora") -> Randomization:
        with self.tx() as s:
            return randomize(s, self.actor(by), pid, clock=self.clock)

    def baseline(self, *pids: str, by: str = "cora") -> None:
        """Record a baseline diary that lets randomization through (the clock moves on)."""
        with self.tx() as s:
            baseline_in(s, self.actor(by), self.clock, *pids)

    def ready(self, site: str = "TWH", headache_type: str = "CM") -> str:
        """Screen and consent an eligible participant, and record their baseline diary."""
        pid = self.screen(site=site, headache_type=headache_type).id
        self.consent(pid)
        self.baseline(pid)
        return pid

    def enrol(self, site: str = "TWH", headache_type: str = "CM") -> str:
        """A participant made ready and randomized; their id."""
        pid = self.ready(site, headache_type)
        self.randomize(pid)
        return pid

    def usage(self, by: str = ADMIN) -> dict[str, StratumUse]:
        with self.tx() as s:
            return {u.stratum: u for u in stratum_usage(s, self.actor(by))}

    def checks(self) -> list[ListCheck]:
        with self.tx() as s:
            return verify_lists(s)

    def verify(self) -> verification.VerifyReport:
        with self.tx() as s:
            return verification.verify(s)

    def add_pharmacist(self, name: str, *, approve: bool = True) -> Actor:
        with self.tx() as s:
            enrol(s, self.actor(ADMIN), self.clock, name, Role.PHARMACIST, password=PASSWORD,
                  approve=approve)
        with self.tx() as s:
            return login(s, name, PASSWORD, clock=self.clock)

    def envelopes(self, stratum: str | None = None) -> list[dict[str, Any]]:
        """Every envelope row (in stratum and sequence order), as stored."""
        stmt = ENVELOPES.select().order_by(ENVELOPES.c.stratum_code, ENVELOPES.c.seq)
        if stratum is not None:
            stmt = stmt.where(ENVELOPES.c.stratum_code == stratum)
        return [dict(r._mapping) for r in self.conn.execute(stmt)]

    def list_of(self, stratum: str, segment: int = 1) -> dict[str, Any]:
        row = self.conn.execute(
            LISTS.select().where(LISTS.c.stratum_code == stratum, LISTS.c.segment == segment)
        ).one()
        return dict(row._mapping)

    def arms(self, stratum: str, *, holder: str = "phil") -> list[str]:
        """What a custodian reads in the stratum's envelopes, in order (tests only)."""
        return [c.arm_code for c in open_all(self, holder, stratum)]


# Audit events of work done: a refusal leaves a record of its own (see refused_changing_nothing).
WORK = ~col(AuditEvent.action).endswith(".refused")


def recorded_actions(box: Box) -> list[str]:
    with box.tx() as s:
        return list(s.exec(select(AuditEvent.action).order_by(col(AuditEvent.seq))).all())


def refused_changing_nothing(box: Box, state: Callable[[Box], Any], error: type[TrialkitError],
                             action: Any, *args: Any, **kwargs: Any) -> TrialkitError:
    """Run an action that must be refused with ``error``; check that ``state`` (read with
    ``WORK``'s events) is as it was, and that the refusal left its one record (a refusal,
    not invalid input, leaves one)."""
    before, records = state(box), len(recorded_actions(box))
    with pytest.raises(error) as caught:
        action(*args, **kwargs)
    assert state(box) == before
    recorded = recorded_actions(box)[records:]
    if isinstance(caught.value, Refused):
        assert len(recorded) == 1 and recorded[0].endswith(".refused"), recorded
    else:
        assert recorded == []
    return caught.value


@contextmanager
def window(world: World) -> Iterator[Box]:
    with world.engine.connect() as conn:
        outer = conn.begin()
        try:
            yield Box(world, conn)
        finally:
            outer.rollback()


def data_key(box: Box, holder: str, list_id: str) -> bytes:
    """Unwrap one list's data key with the holder's own key pair and password."""
    with box.tx() as s:
        user = s.exec(select(User).where(User.name == holder)).one()
        grant = s.exec(select(ListKeyGrant).where(ListKeyGrant.user_id == user.id,
                                                  ListKeyGrant.list_id == list_id)).one()
    if holder not in box.private_keys:  # unwrapping costs a password derivation
        assert user.public_key and user.wrapped_private_key and user.key_kdf
        keys = CustodianKeys(user.public_key, user.wrapped_private_key, user.key_kdf)
        box.private_keys[holder] = unwrap_private_key(keys, PASSWORD)
    return unwrap_data_key(grant.wrapped_key, box.private_keys[holder], key_info(list_id))


def open_all(box: Box, holder: str, stratum: str) -> list[EnvelopeContent]:
    keys: dict[str, bytes] = {}
    contents = []
    for env in box.envelopes(stratum):
        if env["list_id"] not in keys:
            keys[env["list_id"]] = data_key(box, holder, env["list_id"])
        plaintext = open_envelope(keys[env["list_id"]], env["ciphertext"], env["list_id"],
                                  stratum, env["seq"])
        contents.append(parse_envelope_plaintext(plaintext))
    return contents


@pytest.fixture(scope="module", params=BACKENDS)
def staffed(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The trial with its staff, lists not yet sealed."""
    with build_world(request.param, tmp_path_factory.mktemp("alloc"), per_stratum=None) as w:
        yield w


@pytest.fixture
def box(staffed: World) -> Iterator[Box]:
    with window(staffed) as b:
        yield b


@pytest.fixture
def sealed(box: Box) -> Box:
    """Four envelopes sealed in every stratum."""
    box.seal(4)
    return box


# --- sealing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("per_stratum", [1, 5, 7, 11])
def test_each_stratum_releases_exactly_the_envelopes_asked_for_in_whole_blocks(
    box: Box, per_stratum: int
) -> None:
    # Whole blocks of 4 or 6 would give counts such as 8 or 12: a count that is always a sum
    # of block sizes tells a blinded reader something about the block sizes. So the list holds
    # whole blocks, and what is shown and claimable is exactly the count asked for.
    largest = max(PROTOCOL.allocation.block_sizes)
    result = box.seal(per_stratum)
    assert [(c.stratum, c.envelopes) for c in result.lists] == [(s, per_stratum) for s in STRATA]
    for stratum in STRATA:
        rows = box.envelopes(stratum)
        assert [e["seq"] for e in rows] == list(range(1, len(rows) + 1))
        assert per_stratum <= len(rows) < per_stratum + largest
        assert box.list_of(stratum)["count"] == len(rows)
        assert box.list_of(stratum)["released"] == per_stratum
        arms = box.arms(stratum)  # whole 1:1 blocks: the list ends balanced
        assert [arms.count(a) for a in ("KET", "PLA")] == [len(rows) // 2] * 2
    usage = box.usage()
    assert {(u.sealed, u.used, u.left) for u in usage.values()} == {(per_stratum, 0, per_stratum)}
    assert [c.problem for c in box.checks()] == [None] * len(STRATA)
    assert [c.envelopes for c in box.checks()] == [per_stratum] * len(STRATA)


def test_each_list_holds_the_generated_sequence_in_order(box: Box) -> None:
    box.seal(11, seed=5)
    rng = SeededRandom(5)  # replay the draws sealing made, stratum by stratum
    for stratum in STRATA:
        blocks = generate_blocks(PROTOCOL.arm_codes, PROTOCOL.allocation.ratio,
                                 PROTOCOL.allocation.block_sizes, 11, rng)
        assert box.arms(stratum) == flatten(blocks)
        assert [c.seq for c in open_all(box, "phil", stratum)] == list(
            range(1, len(flatten(blocks)) + 1))


def test_sealing_is_audited_with_counts_hashes_and_the_protocols_design_only(box: Box) -> None:
    result = box.seal(5)
    events = box.events("list.seal")
    assert [json.loads(e.after_json or "{}")["stratum"] for e in events] == list(STRATA)
    for event in events:
        after = json.loads(event.after_json or "{}")
        # no segment length or first sequence number: either would show a block boundary
        assert set(after) == {"stratum", "segment", "released", "design", "root",
                              "policy_hash", "signing_key"}
        assert after["released"] == 5 and after["signing_key"] == result.signing_key_fingerprint
        assert after["design"] == {"procedure": "permuted-blocks", "ratio": [1, 1],
                                   "block_sizes": [4, 6],  # kethead.toml's words
                                   "block_weights": [0.5, 0.5]}  # (sizes equally likely)
        assert event.user_name == ADMIN


def test_sealing_needs_a_pharmacist(engine: Engine, admin: Actor, clock: SteppingClock) -> None:
    # An investigator custodian alone is not enough: the pharmacist opens the envelopes.
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR, custodian=True)
    with pytest.raises(Refused, match="no approved pharmacist") as err, transaction(engine) as s:
        seal_lists(s, admin, per_stratum=4, block_sizes=None, clock=clock)
    assert err.value.exit_code == 1
    with read_only(engine) as s:
        assert s.exec(select(func.count()).select_from(Envelope)).one() == 0
        assert s.exec(select(func.count()).select_from(AllocationList)).one() == 0
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "list.seal")).first() is None


def test_sealing_twice_is_refused_and_changes_nothing(sealed: Box) -> None:
    before = sealed.envelopes()
    with pytest.raises(Refused, match="already sealed") as err:
        sealed.seal(6)
    assert err.value.exit_code == 1
    assert sealed.envelopes() == before
    assert len(sealed.events("list.seal")) == len(STRATA)


@pytest.mark.parametrize("who", ["cora", "phil"])
def test_only_the_admin_seals(box: Box, who: str) -> None:
    with pytest.raises(PermissionDenied, match="lacks the permission to seal") as err:
        box.seal(4, by=who)
    assert err.value.exit_code == 1
    assert box.envelopes() == []


@pytest.mark.parametrize(("per_stratum", "sizes", "message"), [
    (0, None, "not between 1 and"),
    (4, [4, 5], "block size 5 is not a multiple of 2"),
    (4, [4, 4], "listed more than once"),
    # the protocol says blocks of 4 and 6: the design is binding
    (4, [2], r"block sizes 2 differ from the protocol's \(4, 6\)"),
    (4, [8, 10], r"block sizes 8, 10 differ from the protocol's \(4, 6\)"),
    (4, [4], r"block sizes 4 differ from the protocol's \(4, 6\)"),
])
def test_a_bad_sealing_request_is_invalid_input(
    box: Box, per_stratum: int, sizes: list[int] | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        box.seal(per_stratum, block_sizes=sizes)
    assert err.value.exit_code == 2
    assert box.envelopes() == []


# --- what the admin sees ------------------------------------------------------------------------


def test_stratum_usage_counts_sealed_used_and_left(sealed: Box) -> None:
    for _ in range(4):
        sealed.enrol("TWH", "CM")
    sealed.enrol("SHS", "CDH")
    usage = sealed.usage()
    assert list(usage) == list(STRATA)
    assert [(u.sealed, u.used, u.left) for u in usage.values()] == [
        (4, 4, 0),  # TWH-CM: exhausted
        (4, 0, 4),
        (4, 0, 4),
        (4, 1, 3),
    ]
    assert set(StratumUse.__dataclass_fields__) == {"stratum", "sealed", "used"}
    # every role may read the counts; they are the same for everyone
    assert sealed.usage("cora") == sealed.usage("phil") == usage


def test_stratum_usage_before_sealing_shows_nothing_sealed(box: Box) -> None:
    assert {(u.sealed, u.used, u.left) for u in box.usage().values()} == {(0, 0, 0)}


# --- extending a stratum --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 7])  # TWH-CM's first block: 4 (seed 1) or 6 (seed 7)
def test_an_extension_releases_what_was_held_then_appends_whole_blocks(
    box: Box, seed: int
) -> None:
    box.seal(4, seed=seed)
    for _ in range(4):
        box.enrol("TWH", "CM")
    before = box.envelopes()
    first = box.list_of("TWH-CM")
    held = list(range(5, first["count"] + 1))  # the rest of the first block: held back
    assert first["released"] == 4
    assert len(held) == (0 if seed == 1 else 2)

    result = box.extend("twh-cm", 3)

    assert [(c.stratum, c.envelopes) for c in result.lists] == [("TWH-CM", 3)]
    after = box.envelopes()
    assert [e for e in after if e["id"] in {b["id"] for b in before}] == before  # byte for byte
    second = box.list_of("TWH-CM", segment=2)
    added = [e for e in box.envelopes("TWH-CM") if e["list_id"] == second["id"]]
    assert [e["seq"] for e in added] == list(range(first["count"] + 1, first["count"] + 1
                                                   + second["count"]))
    assert second["first_seq"] == first["count"] + 1 != first["first_seq"]
    assert second["count"] >= max(3 - len(held), 1)  # at least one block, always
    assert box.list_of("TWH-CM") == first
    assert second["released"] == 3
    assert (box.usage()["TWH-CM"].sealed, box.usage()["TWH-CM"].left) == (7, 3)
    [event] = box.events("list.extend")
    assert json.loads(event.after_json or "{}")["released"] == 3
    # whole blocks: the second segment ends balanced, and so does the stratum
    arms = box.arms("TWH-CM")
    assert arms.count("KET") == arms.count("PLA") == len(arms) // 2
    assert [c.seq for c in open_all(box, "phil", "TWH-CM")] == list(range(1, len(arms) + 1))

    pid = box.enrol("TWH", "CM")

    [bound] = [e for e in box.envelopes("TWH-CM") if e["participant_id"] == pid]
    assert bound["seq"] == 5
    assert bound["list_id"] == (first["id"] if held else second["id"])
    assert [c.problem for c in box.checks()] == [None] * (len(STRATA) + 1)
    report = box.verify()
    assert report.ok, report.problem


def test_an_exhausted_stratum_refuses_until_it_is_extended(sealed: Box) -> None:
    for _ in range(4):
        sealed.enrol("SHS", "CM")
    waiting = sealed.ready("SHS", "CM")
    with pytest.raises(Refused, match="stratum SHS-CM has no sealed envelope left"):
        sealed.randomize(waiting)
    sealed.extend("SHS-CM", 1)
    assert sealed.randomize(waiting).randomization_number == "R0005"
    assert sealed.usage()["SHS-CM"].left == 0


def test_randomizing_before_the_lists_are_sealed_is_refused(box: Box) -> None:
    pid = box.ready()
    with pytest.raises(Refused, match="allocation lists are not sealed yet") as err:
        box.randomize(pid)
    assert err.value.exit_code == 1
    assert box.events("participant.randomize") == []


def test_extending_before_the_lists_are_sealed_is_refused_as_such(box: Box) -> None:
    # TWH-CM is a stratum of the protocol; what is wrong is the state of the trial (exit 1),
    # not the admin's input (exit 2).
    with pytest.raises(Refused) as err:
        box.extend("TWH-CM", 4)
    assert not isinstance(err.value, InvalidInput), err.value.message
    assert "unknown stratum" not in err.value.message
    assert box.envelopes() == []


@pytest.mark.parametrize(("stratum", "who", "error", "message"), [
    ("TWH-XX", ADMIN, InvalidInput, "unknown stratum 'TWH-XX'"),
    ("TWH-CM", "cora", PermissionDenied, "lacks the permission to seal"),
])
def test_a_bad_extension_is_refused(
    sealed: Box, stratum: str, who: str, error: type[TrialkitError], message: str
) -> None:
    before = sealed.envelopes()
    with pytest.raises(error, match=message):
        sealed.extend(stratum, 4, by=who)
    assert sealed.envelopes() == before


# --- custody of the list keys --------------------------------------------------------------------


def test_a_custodian_approving_a_new_pharmacist_hands_her_the_list_keys(sealed: Box) -> None:
    pia = sealed.add_pharmacist("pia", approve=False)
    with sealed.tx() as s:
        assert lists_held(s, "pia") == 0  # added after sealing, not approved: holds nothing
        public_key = s.exec(select(User.public_key).where(User.name == "pia")).one()
        assert public_key is not None
        read_out = hashlib.sha256(public_key).hexdigest()[:16]  # what pia reads out to phil
        result = approve_custodian(s, sealed.actor("phil"), name="pia", fingerprint=read_out,
                                   password=PASSWORD, clock=sealed.clock)
    assert (result.name, result.approved_by, result.lists_wrapped) == ("pia", "phil", 4)
    assert pia.custodian
    for stratum in STRATA:
        list_id = sealed.list_of(stratum)["id"]
        assert data_key(sealed, "pia", list_id) == data_key(sealed, "phil", list_id)
        assert open_all(sealed, "pia", stratum) == open_all(sealed, "phil", stratum)
    [event] = sealed.events("custodian.approve")[-1:]
    assert (event.user_name, event.entity_id) == ("phil", "pia")
    assert json.loads(event.after_json or "{}")["custodian_approved_by"] == "phil"
    assert "4 list keys" in (event.reason or "")
    # a list key is handed over once: approving again is refused, granting adds nothing
    with pytest.raises(Refused, match="already approved"), sealed.tx() as s:
        approve_custodian(s, sealed.actor("phil"), name="pia", fingerprint=read_out,
                          password=PASSWORD, clock=sealed.clock)
    with sealed.tx() as s:
        again = grant_custodian(s, sealed.actor("phil"), password=PASSWORD, grantee="pia",
                                clock=sealed.clock)
    assert again.lists == 0


def test_list_keys_are_not_granted_to_a_custodian_nobody_approved(sealed: Box) -> None:
    sealed.add_pharmacist("pia", approve=False)
    with pytest.raises(Refused, match="pia is not approved yet"), sealed.tx() as s:
        grant_custodian(s, sealed.actor("phil"), password=PASSWORD, grantee="pia",
                        clock=sealed.clock)
    with sealed.tx() as s:
        assert lists_held(s, "pia") == 0
    assert sealed.events("custody.grant") == []


@pytest.mark.parametrize("who", ["cora", ADMIN])
def test_only_a_custodian_can_hand_over_the_list_keys(sealed: Box, who: str) -> None:
    sealed.add_pharmacist("pia", approve=False)
    with pytest.raises(CustodyRefused, match="only an unblinding custodian") as err, \
            sealed.tx() as s:
        grant_custodian(s, sealed.actor(who), password=PASSWORD, grantee="pia",
                        clock=sealed.clock)
    assert isinstance(err.value, PermissionDenied) and err.value.exit_code == 1
    with sealed.tx() as s:
        assert lists_held(s, "pia") == 0
    [refusal] = sealed.events("custody.refused")  # the attempt itself is kept on record
    assert (refusal.user_name, refusal.entity_id) == (who, "pia")
    assert sealed.events("custody.grant") == []


def test_the_custodian_must_unlock_their_key_to_hand_it_over(sealed: Box) -> None:
    sealed.add_pharmacist("pia", approve=False)
    with sealed.tx() as s:
        public_key = s.exec(select(User.public_key).where(User.name == "pia")).one()
    assert public_key is not None
    with pytest.raises(AuthenticationFailed), sealed.tx() as s:
        approve_custodian(s, sealed.actor("phil"), name="pia",
                          fingerprint=hashlib.sha256(public_key).hexdigest()[:16],
                          password="not-phils-password", clock=sealed.clock)
    with sealed.tx() as s:
        assert lists_held(s, "pia") == 0


def test_list_keys_go_only_to_a_custodian(sealed: Box) -> None:
    with pytest.raises(Refused, match="tess is not an active unblinding custodian"), \
            sealed.tx() as s:
        grant_custodian(s, sealed.actor("phil"), password=PASSWORD, grantee="tess",
                        clock=sealed.clock)
    assert sealed.events("custody.grant") == []


# --- tampering with a list ----------------------------------------------------------------------

TWH_CM = "TWH-CM"


def envelope_row(box: Box, seq: int) -> dict[str, Any]:
    [row] = [e for e in box.envelopes(TWH_CM) if e["seq"] == seq]
    return row


def set_envelope(box: Box, seq: int, **values: Any) -> None:
    box.conn.execute(ENVELOPES.update().where(ENVELOPES.c.stratum_code == TWH_CM,
                                              ENVELOPES.c.seq == seq).values(**values))


def flip_a_ciphertext_byte(box: Box) -> None:
    ciphertext = bytearray(envelope_row(box, 2)["ciphertext"])
    ciphertext[40] ^= 0x01
    set_envelope(box, 2, ciphertext=bytes(ciphertext))


def change_a_commitment(box: Box) -> None:
    digest = envelope_row(box, 2)["commitment"]
    set_envelope(box, 2, commitment=("0" if digest[0] != "0" else "1") + digest[1:])


def delete_envelope(seq: int) -> Any:
    def tamper(box: Box) -> None:
        box.conn.execute(ENVELOPES.delete().where(ENVELOPES.c.stratum_code == TWH_CM,
                                                  ENVELOPES.c.seq == seq))
    return tamper


def swap_two_ciphertexts(box: Box) -> None:
    one, three = envelope_row(box, 2)["ciphertext"], envelope_row(box, 4)["ciphertext"]
    set_envelope(box, 2, ciphertext=three)
    set_envelope(box, 4, ciphertext=one)


def set_list(box: Box, **values: Any) -> None:
    box.conn.execute(LISTS.update().where(LISTS.c.stratum_code == TWH_CM).values(**values))


def forge_the_signature(box: Box) -> None:
    lst = box.list_of(TWH_CM)
    manifest = Manifest(lst["id"], TWH_CM, lst["count"], lst["policy_hash"], lst["root"])
    set_list(box, signature=sign_manifest(new_signing_key()[0], manifest))


def replace_the_signing_key(box: Box) -> None:
    set_list(box, signing_key=new_signing_key()[1])


def re_sign_with_a_new_key(box: Box) -> None:
    # Whoever re-signs a doctored list with a key of their own must also replace the key.
    lst = box.list_of(TWH_CM)
    manifest = Manifest(lst["id"], TWH_CM, lst["count"], lst["policy_hash"], lst["root"])
    private, public = new_signing_key()
    set_list(box, signature=sign_manifest(private, manifest), signing_key=public)


TAMPERING = {
    "a ciphertext byte changed": (flip_a_ciphertext_byte, "envelope TWH-CM #2 was changed"),
    "a commitment changed": (change_a_commitment, "envelope TWH-CM #2 was changed"),
    "the first envelope deleted": (delete_envelope(1), "envelope TWH-CM #1 is missing"),
    "a middle envelope deleted": (delete_envelope(2), "envelope TWH-CM #2 is missing"),
    "the last envelope deleted": (delete_envelope(4), "envelope TWH-CM #4 is missing"),
    "two ciphertexts swapped": (swap_two_ciphertexts, "envelope TWH-CM #2 was changed"),
    "the signature forged": (forge_the_signature, "signed manifest does not verify"),
    "the signing key replaced": (replace_the_signing_key, "signed manifest does not verify"),
    "the list re-signed with a new key": (
        re_sign_with_a_new_key, "signing key is not the one recorded in the audit trail"),
}


def test_untouched_lists_verify(sealed: Box) -> None:
    sealed.enrol()
    checks = sealed.checks()
    assert [(c.stratum, c.envelopes, c.problem) for c in checks] == [
        (s, 4, None) for s in sorted(STRATA)]
    report = sealed.verify()
    assert report.ok, report.problem


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_list_verification_names_the_changed_list_and_envelope(
    sealed: Box, tampering: str
) -> None:
    tamper, problem = TAMPERING[tampering]
    sealed.enrol("SHS", "CM")  # the trial is under way in another stratum
    target = sealed.list_of(TWH_CM)["id"]
    tamper(sealed)

    bad = [c for c in sealed.checks() if c.problem is not None]

    assert [(c.list_id, c.stratum) for c in bad] == [(target, TWH_CM)]
    assert bad[0].problem is not None and problem in bad[0].problem
    report = sealed.verify()
    assert not report.ok
    assert report.problem is not None and target in report.problem


# --- binding envelopes behind trialkit's back --------------------------------------------------


def bind_a_free_envelope(box: Box) -> str:
    pid = box.ready()
    set_envelope(box, 1, participant_id=pid, bound_at=box.clock.now())
    return pid


def move_a_participant_to_another_envelope(box: Box) -> str:
    pid = box.enrol()  # bound to envelope 1
    set_envelope(box, 1, participant_id=None, bound_at=None)
    set_envelope(box, 3, participant_id=pid, bound_at=box.clock.now())
    return pid


def unbind_a_participant(box: Box) -> str:
    pid = box.enrol()
    set_envelope(box, 1, participant_id=None, bound_at=None)
    return pid


@pytest.mark.parametrize("tamper", [
    bind_a_free_envelope, move_a_participant_to_another_envelope, unbind_a_participant,
], ids=lambda f: f.__name__)
def test_binding_an_envelope_without_an_audit_event_fails_verification(
    sealed: Box, tamper: Any
) -> None:
    pid = tamper(sealed)
    report = sealed.verify()
    assert not report.ok
    assert report.problem is not None and f"participant {pid!r} no longer matches" in (
        report.problem)
    # the lists themselves are intact: only the binding changed
    assert [c.problem for c in sealed.checks()] == [None] * len(STRATA)


def test_a_window_is_rolled_back(staffed: World) -> None:
    """The box is what keeps these tests apart: nothing done in one is seen by the next."""
    with window(staffed) as first:
        first.seal(2)
        first.enrol()
        assert first.count(Envelope, col(Envelope.participant_id).is_not(None)) == 1
    with window(staffed) as second:
        assert second.envelopes() == []
        assert second.events("participant.randomize") == []


# --- whole blocks under any sequence of extensions ------------------------------------------------


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.integers(1, 15),
       extensions=st.lists(st.tuples(st.sampled_from(STRATA), st.integers(1, 9)), max_size=8),
       seed=st.integers(0, 2**16))
def test_extensions_never_unbalance_a_stratum_beyond_half_the_largest_block(
    staffed: World, first: int, extensions: list[tuple[str, int]], seed: int
) -> None:
    # Permuted blocks of 4 or 6 (the protocol's words) promise that, at any point of a
    # stratum's sequence, the arms are at most half the largest block apart: 3. The arms are
    # read back as a custodian reads them, so this holds for what was actually sealed.
    bound = max(PROTOCOL.allocation.block_sizes) // 2
    with window(staffed) as box:
        box.seal(first, seed=seed)
        released = dict.fromkeys(STRATA, first)
        for stratum, count in extensions:
            box.extend(stratum, count)
            released[stratum] += count
        assert {u.stratum: u.sealed for u in box.usage().values()} == released
        for stratum in STRATA:
            arms = box.arms(stratum)
            assert len(arms) >= released[stratum]
            running, worst = 0, 0
            for arm in arms:
                running += 1 if arm == "KET" else -1
                worst = max(worst, abs(running))
            assert worst <= bound, (stratum, arms)
            assert running == 0  # whole blocks: every list ends balanced
