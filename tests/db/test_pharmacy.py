"""The research pharmacy through its services, on SQLite and (with TRIALKIT_TEST_PG_URL) on
PostgreSQL: the dispense queue, opening an envelope, recording the preparation, labels and
reprints, emergency unblinding, and every refusal on the way.

Each backend's trial is built once per module (``World``): the staff, lists sealed so that
every stratum reads KET, PLA, KET, PLA, ... (the generator is forced, so the tests know the
arms), and participants randomized through the real services. Each test works in a ``Box``
whose changes are rolled back at its end, so every test starts from that same trial."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, update
from sqlmodel import Session, col, select

from tests.builders import PROTOCOL, consented, ready_to_randomize, record_baseline, seal, staff
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
from tests.unit.test_labels import differences, page_texts, render
from trialkit.domain.errors import (
    AccountLocked,
    AuthenticationFailed,
    InvalidInput,
    NextStep,
    NotFound,
    PermissionDenied,
    Refused,
    TrialkitError,
)
from trialkit.domain.infusion_time import PreparationExpired
from trialkit.domain.procedures import Block
from trialkit.domain.protocol import load_protocol
from trialkit.domain.roles import Role
from trialkit.render.labels import LabelSheet, render_labels
from trialkit.services.actor import Actor
from trialkit.services.administration.setup import initialize
from trialkit.services.administration.sign_in import FREE_FAILURES, login
from trialkit.services.diary.entries import infuse
from trialkit.services.enrolment.allocation import seal_lists
from trialkit.services.enrolment.participants import (
    ParticipantView,
    list_participants,
    randomize,
    withdraw,
)
from trialkit.services.integrity import audit, verification
from trialkit.services.pharmacy.checks import PharmacyRefused
from trialkit.services.pharmacy.dispensing import (
    Dispensing,
    QueueEntry,
    dispense,
    dispense_queue,
    print_labels,
    read_preparation,
    reprepare,
)
from trialkit.services.pharmacy.envelopes import EnvelopeBroken
from trialkit.services.pharmacy.preparations import current_preparation
from trialkit.services.pharmacy.unblinding import Unblinding, unblind
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AuditEvent, Envelope, Participant, Preparation, Trial, User

# Every stratum's list reads KET, PLA, KET, PLA, ...: so are the participants randomized.
ARMS = {"TWH-001": "KET", "TWH-002": "PLA", "TWH-003": "KET", "TWH-004": "PLA",
        "TWH-005": "KET", "SHS-001": "KET"}
WEIGHTS = {"TWH-001": 70.0, "TWH-002": 70.0, "TWH-003": 68.3, "TWH-004": 70.0,
           "TWH-005": 55.0, "TWH-006": 70.0, "SHS-001": 90.0}
WITHDRAWN, NOT_RANDOMIZED = "TWH-005", "TWH-006"
# Lots differ by arm, in content and in length: neither may show anywhere blinded.
LOTS = {"KET": {"bolus": "K2403-117", "infusion": "K2403-118"},
        "PLA": {"bolus": "S2311-042", "infusion": "NS-2311-0043-BAG"}}
ARM_WORDS = re.compile(r"\b(?:KET|PLA|ketamine|placebo|saline|chloride)\b", re.IGNORECASE)


def arm_words(shown: str) -> list[str]:
    """Arm words in something blinded people see (the public trial title set aside)."""
    return ARM_WORDS.findall(shown.replace(PROTOCOL.trial.title, "<title>"))


def alternating(arm_codes: Sequence[str], ratio: Sequence[int], block_sizes: Sequence[int],
                n_slots: int, rng: Any, *weights: Any) -> list[Block]:
    """A stand-in for ``generate_blocks``: one block reading the arms in turn."""
    return [Block(n_slots, tuple(arm_codes[i % len(arm_codes)] for i in range(n_slots)))]


@dataclass(frozen=True)
class World:
    """KetHead with alice (admin), phil and pia (pharmacists), cora (coordinator, TWH and
    SHS), tess (coordinator, TWH), ivan (custodian investigator), iris (investigator) and
    mona (monitor) signed in, and the participants of ``ARMS`` randomized."""

    url: str
    engine: Engine
    at: datetime
    actors: Mapping[str, Actor]


@contextmanager
def build_world(backend: str, folder: Path, *, training: bool = False) -> Iterator[World]:
    with empty_database(backend, folder) as url:
        engine = make_engine(url, must_exist=False)
        clock = SteppingClock()
        try:
            initialize(engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
                       training=training, clock=clock)
            alice = sign_in(engine, ADMIN, clock)
            actors = {ADMIN: alice, **staff(engine, alice, clock)}
            for name, role, custodian in (("pia", Role.PHARMACIST, False),
                                          ("ivan", Role.INVESTIGATOR, True),
                                          ("iris", Role.INVESTIGATOR, False),
                                          ("mona", Role.MONITOR, False)):
                add_user(engine, alice, clock, name, role, custodian=custodian)
                actors[name] = sign_in(engine, name, clock)
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr("trialkit.domain.designs.generate_blocks", alternating)
                with transaction(engine) as s:
                    seal_lists(s, alice, per_stratum=8, block_sizes=None, clock=clock)
            cora = actors["cora"]
            people = [consented(engine, cora, clock, site=pid[:3],
                                headache_type="CM" if pid.startswith("TWH") else "CDH",
                                weight_kg=weight).id
                      for pid, weight in WEIGHTS.items()]
            assert people == list(WEIGHTS)
            randomized = [pid for pid in people if pid in ARMS]
            record_baseline(engine, cora, clock, *randomized)
            for pid in randomized:
                with transaction(engine) as s:
                    randomize(s, cora, pid, clock=clock)
            with transaction(engine) as s:
                withdraw(s, cora, WITHDRAWN, reason="moved away", clock=clock)
            clock.advance(minutes=5)
            yield World(url, engine, clock.now(), actors)
        finally:
            engine.dispose()


class Box:
    """One test's window on a world: whatever happens through it is rolled back when the
    test ends. Transactions behave as ``store.db.transaction`` (on savepoints)."""

    def __init__(self, world: World, conn: Connection) -> None:
        self.world = world
        self.conn = conn
        self.clock = SteppingClock(world.at)
        self.added: dict[str, Actor] = {}  # users added in this box

    def actor(self, name: str) -> Actor:
        return self.added.get(name) or self.world.actors[name]

    def tx(self) -> AbstractContextManager[Session]:
        """A unit of work, as the application makes one, on a savepoint of this box."""
        return transaction(self.conn)

    # what people do

    def dispense(self, pid: str, *, by: str = "phil", password: str = PASSWORD,
                 **record: Any) -> Dispensing:
        """Open the envelope; with ``checked_by`` the checker signs with their password
        (every user's is PASSWORD) unless ``checker_password`` says otherwise."""
        if "checked_by" in record:
            record.setdefault("checker_password", PASSWORD)
        with self.tx() as s:
            return dispense(s, self.actor(by), pid, password=password, clock=self.clock,
                            **record)

    def prepare(self, pid: str, *, by: str = "phil", checker: str = "pia",
                labels: bool = True) -> Dispensing:
        """Open, prepare (with the lots of the participant's arm) and record."""
        return self.dispense(pid, by=by, lots=LOTS[ARMS[pid]], checked_by=checker,
                             print_labels=labels)

    def queue(self, by: str = "phil", **kw: Any) -> list[QueueEntry]:
        with self.tx() as s:
            return dispense_queue(s, self.actor(by), clock=self.clock, **kw)

    def labels(self, pid: str, *, by: str = "phil") -> LabelSheet:
        with self.tx() as s:
            return print_labels(s, self.actor(by), pid, clock=self.clock)

    def read(self, pid: str, *, by: str = "phil") -> Dispensing:
        with self.tx() as s:
            return read_preparation(s, self.actor(by), pid, password=PASSWORD,
                                    clock=self.clock)

    def unblind(self, pid: str, reason: str, *, by: str = "ivan",
                password: str = PASSWORD) -> Unblinding:
        with self.tx() as s:
            return unblind(s, self.actor(by), pid, reason=reason, password=password,
                           clock=self.clock)

    def participants(self, by: str = "cora") -> dict[str, ParticipantView]:
        with self.tx() as s:
            return {v.id: v for v in list_participants(s, self.actor(by))}

    def add_pharmacist(self, name: str, sites: list[str] | None = None, *,
                       approve: bool = True) -> Actor:
        with self.tx() as s:
            enrol(s, self.actor(ADMIN), self.clock, name, Role.PHARMACIST, sites=sites,
                  password=PASSWORD, approve=approve)
        with self.tx() as s:
            self.added[name] = login(s, name, PASSWORD, clock=self.clock)
        return self.added[name]

    # what is stored

    def events(self, action: str | None = None) -> list[AuditEvent]:
        with self.tx() as s:
            stmt = select(AuditEvent).order_by(col(AuditEvent.seq))
            if action:
                stmt = stmt.where(AuditEvent.action == action)
            return list(s.exec(stmt).all())

    def preparation(self, pid: str) -> Preparation | None:
        with self.tx() as s:
            return current_preparation(s, pid)

    def new_actions(self, before: tuple[int, int, int, str]) -> list[str]:
        """The audit actions recorded since ``state()`` gave ``before``."""
        return [e.action for e in self.events()[before[0]:]]

    def failed_sign_ins(self, name: str) -> int:
        """The user's wrong passwords in a row (what their lockout counts)."""
        with self.tx() as s:
            return s.exec(select(User).where(User.name == name)).one().failed_logins

    def state(self) -> tuple[int, int, int, str]:
        """Audit events, preparations, participants flagged as unblinded, and the chain
        head, the records of refusals left out: what "nothing was written" is checked
        against (a refusal is recorded, see :meth:`refused`)."""
        work = ~col(AuditEvent.action).endswith(".refused")
        with self.tx() as s:
            events = s.exec(select(func.count()).select_from(AuditEvent).where(work)).one()
            preps = s.exec(select(func.count()).select_from(Preparation)).one()
            flagged = s.exec(select(func.count()).select_from(Participant)
                             .where(col(Participant.unblinded_emergency))).one()
            head = s.exec(select(AuditEvent.hash).where(work)
                          .order_by(col(AuditEvent.seq).desc())).first()
        return int(events), int(preps), int(flagged), head or ""

    def refusals(self) -> list[AuditEvent]:
        with self.tx() as s:
            return list(s.exec(select(AuditEvent)
                               .where(col(AuditEvent.action).endswith(".refused"))
                               .order_by(col(AuditEvent.seq))).all())

    def verify(self) -> verification.VerifyReport:
        with self.tx() as s:
            return verification.verify(s)

    def refused(self, kind: type[TrialkitError], action: Callable[[], Any]) -> TrialkitError:
        """Do ``action``, expecting it to raise ``kind``; the error."""
        with pytest.raises(kind) as caught:
            action()
        return caught.value


@contextmanager
def window(world: World) -> Iterator[Box]:
    with world.engine.connect() as conn:
        outer = conn.begin()
        try:
            yield Box(world, conn)
        finally:
            outer.rollback()


def trial_on_each_backend(
    folder: str, build: Callable[[str, Path], AbstractContextManager[World]] | None = None
) -> Any:
    """A module-scoped fixture: the trial ``build`` makes (the pharmacy's by default),
    once per backend, in a temporary folder named ``folder``. Each test then works in a
    :func:`window` on it."""

    @pytest.fixture(scope="module", params=BACKENDS)
    def trial(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[World]:
        with (build or build_world)(request.param, tmp_path_factory.mktemp(folder)) as w:
            yield w

    return trial


world = trial_on_each_backend("pharmacy")


@pytest.fixture
def box(world: World) -> Iterator[Box]:
    with window(world) as b:
        yield b


# --- the queue -----------------------------------------------------------------------------------


def test_the_queue_lists_randomized_participants_awaiting_preparation_oldest_first(
    box: Box,
) -> None:
    queue = box.queue()
    assert [e.participant_id for e in queue] == ["SHS-001", "TWH-001", "TWH-002", "TWH-003",
                                                 "TWH-004"]
    assert {e.participant_id: e.weight_kg for e in queue} == {
        pid: WEIGHTS[pid] for pid in ARMS if pid != WITHDRAWN}
    assert [e.participant_id for e in box.queue(site="twh")][0] == "TWH-001"
    box.prepare("TWH-002")
    assert "TWH-002" not in [e.participant_id for e in box.queue()]


def test_the_queue_holds_blinded_columns_only(box: Box) -> None:
    fields = {f.name for f in dataclasses.fields(QueueEntry)}
    assert fields == {"participant_id", "site", "randomization_number", "label_code",
                      "randomized_at", "weight_kg", "infusion_date", "unblinded_emergency",
                      "expired_at"}
    assert not arm_words(repr(box.queue()))


def test_a_site_bound_pharmacist_sees_the_queue_of_their_sites_only(box: Box) -> None:
    box.add_pharmacist("sid", sites=["SHS"])
    assert [e.participant_id for e in box.queue(by="sid")] == ["SHS-001"]


@pytest.mark.parametrize("who", ["cora", "mona", ADMIN, "ivan"])
def test_only_pharmacists_see_the_queue(box: Box, who: str) -> None:
    err = box.refused(PermissionDenied, lambda: box.queue(by=who))
    assert "lacks the permission to open allocation envelopes" in err.message


# --- opening an envelope -------------------------------------------------------------------------


def test_the_pharmacist_opens_the_envelope_and_sees_the_arm_and_how_to_prepare_it(
    box: Box,
) -> None:
    before = box.state()
    d = box.dispense("TWH-001")
    assert (d.arm_code, d.arm_name, d.envelope) == ("KET", "Ketamine", "TWH-CM #1")
    assert (d.randomization_number, d.record, d.labels) == ("R0001", None, None)
    assert d.products["bolus"].startswith("Ketamine 10 mg/mL")
    bolus, bag = d.plan.dose("bolus"), d.plan.dose("infusion")
    assert (bolus.volume_ml, bag.volume_ml, bag.rate_ml_h, bag.hours) == (
        Decimal("7.0"), Decimal("210.0"), Decimal("35.0"), Decimal("6"))
    assert d.concomitant == PROTOCOL.dosing.concomitant
    # only looking: the opening is audited, nothing else is written
    [opening] = box.events("envelope.open")
    assert (opening.user_name, opening.entity, opening.entity_id) == ("phil", "envelope",
                                                                      "TWH-CM#1")
    assert json.loads(opening.after_json or "") == {
        "participant": "TWH-001", "list": json.loads(opening.after_json or "")["list"],
        "purpose": "look"}
    assert box.state()[0] == before[0] + 1 and box.state()[1:3] == before[1:3]
    assert "TWH-001" in [e.participant_id for e in box.queue()]


def test_the_arms_are_those_the_forced_lists_hold(box: Box) -> None:
    opened = {pid: box.dispense(pid).arm_code for pid in ARMS if pid != WITHDRAWN}
    assert opened == {pid: arm for pid, arm in ARMS.items() if pid != WITHDRAWN}


def test_the_placebo_is_prepared_in_the_same_volumes_and_rates(box: Box) -> None:
    ket, pla = box.dispense("TWH-001"), box.dispense("TWH-002")
    assert (ket.arm_code, pla.arm_code) == ("KET", "PLA")
    assert ket.plan == pla.plan
    assert pla.products == {"bolus": "Sodium chloride 0.9 %", "infusion": "Sodium chloride 0.9 %"}


def test_recording_the_preparation(box: Box) -> None:
    box.clock.advance(minutes=12)
    d = box.prepare("TWH-002")
    record = d.record
    assert record is not None and d.labels is not None
    assert (record.prepared_by, record.checked_by, record.label_prints) == ("phil", "pia", 1)
    assert record.prepared_at == box.clock.now()
    assert record.expires_at - record.prepared_at == timedelta(hours=24)
    assert record.lots == LOTS["PLA"]
    prep = box.preparation("TWH-002")
    assert prep is not None and prep.expires_at == record.expires_at
    assert [e.action for e in box.events()[-2:]] == ["envelope.open", "preparation.record"]
    assert box.participants()["TWH-002"].status == "dispensed"
    assert box.verify().ok


def test_the_checker_signs_the_check_with_their_own_password(box: Box) -> None:
    box.clock.advance(minutes=7)
    signed_at = box.clock.now()
    d = box.prepare("TWH-001")
    assert d.record is not None
    assert (d.record.checked_by, d.record.checked_at) == ("pia", signed_at)
    prep = box.preparation("TWH-001")
    assert prep is not None and (prep.checked_by, prep.checked_at) == ("pia", signed_at)
    # the check was verified as pia's sign-in, and the record says it was signed
    actions = [(e.action, e.user_name) for e in box.events()[-3:]]
    assert actions == [("login", "pia"), ("envelope.open", "phil"),
                       ("preparation.record", "phil")]
    after = json.loads(box.events("preparation.record")[-1].after_json or "")
    assert (after["checked_by"], after["check_signed_at"]) == ("pia", signed_at.isoformat())
    assert box.verify().ok


def pia_failures(box: Box) -> int:
    return box.failed_sign_ins("pia")


@pytest.mark.parametrize("password", ["not-pias-password", PASSWORD.upper()])
def test_a_wrong_checker_password_records_nothing_but_the_failed_sign_in(
    box: Box, password: str
) -> None:
    before, failures = box.state(), pia_failures(box)
    err = box.refused(AuthenticationFailed, lambda: box.dispense(
        "TWH-001", lots=LOTS["KET"], checked_by="pia", checker_password=password))
    assert "the check by pia is not signed: wrong password" in err.message
    # as a wrong sign-in of pia's: counted towards her lockout and audited, nothing else
    assert pia_failures(box) == failures + 1
    events, preps, flagged, _head = box.state()
    assert (events, preps, flagged) == (before[0] + 1, before[1], before[2])
    [failed] = box.events()[-1:]
    assert (failed.action, failed.user_name, failed.entity_id) == ("login.fail", "pia", "pia")
    assert "TWH-001" in [e.participant_id for e in box.queue()]


def test_wrong_checker_passwords_slow_the_checker_as_wrong_sign_ins_do(box: Box) -> None:
    for _ in range(FREE_FAILURES + 1):
        box.refused(AuthenticationFailed, lambda: box.dispense(
            "TWH-001", lots=LOTS["KET"], checked_by="pia", checker_password="guess"))
    # now even the right password waits a second, as after as many wrong sign-ins
    err = box.refused(AuthenticationFailed, lambda: box.prepare("TWH-001"))
    assert "the check by pia is not signed" in err.message and "wait 1 s" in err.message
    with box.tx() as s:
        with pytest.raises(AccountLocked):
            login(s, "pia", PASSWORD, clock=box.clock)
    assert box.preparation("TWH-001") is None
    box.clock.advance(seconds=1)  # never locked out: after the wait the right one works
    with box.tx() as s:
        assert login(s, "pia", PASSWORD, clock=box.clock).name == "pia"


def test_the_check_needs_the_checkers_password(box: Box) -> None:
    before = box.state()
    err = box.refused(InvalidInput, lambda: box.dispense(
        "TWH-001", lots=LOTS["KET"], checked_by="pia", checker_password=""))
    assert "pia signs the check with their own password" in err.message
    assert box.state() == before


def test_lower_case_lots_are_taken_in_capitals(box: Box) -> None:
    d = box.dispense("TWH-001", lots={"bolus": " k2403-117 ", "infusion": "k2403-118"},
                     checked_by="pia")
    assert d.record is not None and d.record.lots == LOTS["KET"]


def test_lots_are_sealed_and_any_custodian_pharmacist_can_read_them(box: Box) -> None:
    box.prepare("TWH-001")
    box.prepare("TWH-002")
    for pid in ("TWH-001", "TWH-002"):
        prep = box.preparation(pid)
        assert prep is not None
        for lot in LOTS[ARMS[pid]].values():
            assert lot.encode() not in prep.sealed_details
        read = box.read(pid, by="pia")
        assert (read.arm_code, read.record and read.record.lots) == (ARMS[pid], LOTS[ARMS[pid]])
    assert box.events("envelope.open")[-1].user_name == "pia"


def test_the_sealed_details_are_the_same_size_for_both_arms(box: Box) -> None:
    box.prepare("TWH-001")
    box.prepare("TWH-002")
    sizes = {len(p.sealed_details) for p in map(box.preparation, ("TWH-001", "TWH-002")) if p}
    assert len(sizes) == 1


# --- identical labels ----------------------------------------------------------------------------


def test_equal_weights_in_opposite_arms_give_identical_labels(box: Box) -> None:
    ket = box.prepare("TWH-001")
    box.clock.advance(minutes=17)
    pla = box.prepare("TWH-002")
    assert (ket.arm_code, pla.arm_code) == ("KET", "PLA")
    assert ket.labels is not None and pla.labels is not None
    own = ("participant_id", "randomization_number", "label_code", "prepared_at", "expires_at")
    swapped = dataclasses.replace(pla.labels, **{f: getattr(ket.labels, f) for f in own})
    assert swapped == ket.labels
    # ... so with the identifiers and times forced equal, the PDFs are the same bytes,
    assert render_labels(swapped) == render_labels(ket.labels)
    pdfs = {d.arm_code: render_labels(d.labels) for d in (ket, pla) if d.labels}
    # and as they come, they differ in text only where the identifiers and times are
    texts = []
    for d in (ket, pla):
        assert d.labels is not None
        text = "\n".join(page_texts(pdfs[d.arm_code]))
        for f in own:
            value = getattr(d.labels, f)
            shown = f"{value:%Y-%m-%d %H:%M}" if isinstance(value, datetime) else value
            assert shown in text
            text = text.replace(shown, f"<{f}>")
        assert not [lot for lot in LOTS[d.arm_code].values() if lot in text]
        texts.append(text)
    assert texts[0] == texts[1]
    # and in pixels only inside the regions that hold them.
    for a, b in zip(render(pdfs["KET"]), render(pdfs["PLA"]), strict=True):
        outside, inside = differences(a, b)
        assert not outside and inside


# --- reprints ------------------------------------------------------------------------------------


def test_reprints_are_counted_on_the_label_and_audited(box: Box) -> None:
    box.prepare("TWH-001", labels=False)
    prep = box.preparation("TWH-001")
    assert prep is not None and prep.label_prints == 0
    first = box.labels("TWH-001")
    again = box.labels("TWH-001", by="pia")
    assert (first.print_number, again.print_number) == (1, 2)
    assert [e.action for e in box.events()[-2:]] == ["label.print", "label.reprint"]
    assert "REPRINT 1" in page_texts(render_labels(again))[0]
    assert box.verify().ok


def test_labels_before_the_preparation_is_recorded_are_refused(box: Box) -> None:
    before = box.state()
    err = box.refused(Refused, lambda: box.labels("TWH-001"))
    assert "has not been dispensed yet" in err.message
    assert box.state() == before


# --- preparing again (an expired or spoilt preparation) -------------------------------------------

EXPIRY = timedelta(hours=PROTOCOL.dosing.expiry_hours)  # KetHead: 24 h


def envelopes_used(box: Box) -> dict[str, int | None]:
    with box.tx() as s:
        rows = s.exec(select(Envelope).where(col(Envelope.participant_id).is_not(None))).all()
        return {str(e.participant_id): e.id for e in rows}


def preparations_of(box: Box, pid: str) -> list[Preparation]:
    with box.tx() as s:
        return list(s.exec(select(Preparation).where(Preparation.participant_id == pid)
                           .order_by(col(Preparation.number))).all())


def again(box: Box, pid: str, *, by: str = "phil", reason: str = "expired before the infusion",
          checker: str = "pia", **kw: Any) -> Dispensing:
    kw.setdefault("checker_password", PASSWORD)
    with box.tx() as s:
        return reprepare(s, box.actor(by), pid, reason=reason, password=PASSWORD,
                         clock=box.clock, lots=LOTS[ARMS[pid]], checked_by=checker, **kw)


def test_an_expired_preparation_is_listed_to_prepare_again_from_its_expiry_minute(
    box: Box,
) -> None:
    first = box.prepare("TWH-001")
    assert first.record is not None
    expires = first.record.prepared_at + EXPIRY
    assert first.record.expires_at == expires
    box.clock.at = expires - timedelta(seconds=1)  # 23:59:59 later: still good
    assert "TWH-001" not in [e.participant_id for e in box.queue()]
    box.clock.at = expires
    [entry] = [e for e in box.queue() if e.participant_id == "TWH-001"]
    assert entry.expired_at == expires
    assert [e.expired_at for e in box.queue() if e.participant_id != "TWH-001"] == [None] * 4
    assert not arm_words(repr(box.queue()))


def test_dispensing_an_expired_preparation_again_points_to_reprepare(box: Box) -> None:
    box.prepare("TWH-001")
    box.clock.advance(hours=25)
    before = box.state()
    err = box.refused(Refused, lambda: box.dispense("TWH-001"))
    assert "expired at" in err.message
    assert err.next_step == NextStep("prepare-again", "TWH-001")
    assert box.state() == before


def test_preparing_again_voids_the_old_preparation_and_records_a_new_one(box: Box) -> None:
    box.prepare("TWH-001")
    used = envelopes_used(box)
    box.clock.advance(hours=25)
    events_before = len(box.events())
    d = again(box, "TWH-001", print_labels=True)
    now = box.clock.now()
    # the same envelope, opened again: the same arm, no new envelope taken
    assert (d.arm_code, d.envelope) == ("KET", "TWH-CM #1")
    assert envelopes_used(box) == used
    assert d.record is not None and d.labels is not None
    assert (d.record.number, d.record.prepared_at, d.record.expires_at) == (2, now, now + EXPIRY)
    assert (d.record.checked_by, d.record.checked_at, d.record.lots) == ("pia", now, LOTS["KET"])
    old, new = preparations_of(box, "TWH-001")
    assert (old.number, old.voided_at, old.voided_by, old.void_reason) == (
        1, now, "phil", "expired before the infusion")
    assert (new.number, new.voided_at, new.label_prints) == (2, None, 1)
    current = box.preparation("TWH-001")
    assert current is not None and current.number == 2
    # audited: the check signed, the opening, the void (before and after) and the new record
    events = box.events()[events_before:]
    assert [(e.action, e.user_name) for e in events] == [
        ("login", "pia"), ("envelope.open", "phil"), ("preparation.void", "phil"),
        ("preparation.record", "phil")]
    opening, void, record = events[1:]
    assert json.loads(opening.after_json or "")["purpose"] == "prepare again"
    assert (void.entity_id, void.reason) == ("TWH-001", "expired before the infusion")
    assert "voided_at" not in json.loads(void.before_json or "")
    assert json.loads(void.after_json or "")["void_reason"] == "expired before the infusion"
    assert (record.entity_id, record.reason) == ("TWH-001#2", "expired before the infusion")
    assert json.loads(record.after_json or "")["number"] == 2
    # the new labels say so; the participant is off the queue and still "dispensed"
    assert "PREP 2: EARLIER VOID" in page_texts(render_labels(d.labels))[0]
    assert "TWH-001" not in [e.participant_id for e in box.queue()]
    assert box.participants()["TWH-001"].status == "dispensed"
    reprint = box.labels("TWH-001")
    assert (reprint.print_number, reprint.preparation_number) == (2, 2)
    assert "PREP 2 REPRINT 1" in page_texts(render_labels(reprint))[0]
    assert box.read("TWH-001").record == dataclasses.replace(d.record, label_prints=2)
    assert box.verify().ok


def test_a_third_preparation_after_a_second_expiry(box: Box) -> None:
    box.prepare("TWH-002")
    for _ in range(2):
        box.clock.advance(hours=24)
        again(box, "TWH-002")
    assert [(p.number, p.voided_at is None) for p in preparations_of(box, "TWH-002")] == [
        (1, False), (2, False), (3, True)]
    assert box.events("preparation.record")[-1].entity_id == "TWH-002#3"
    assert box.verify().ok


def test_both_arms_are_prepared_again_alike(box: Box) -> None:
    box.prepare("TWH-001")
    box.prepare("TWH-002")
    box.clock.advance(hours=25)
    shapes = []
    for pid in ("TWH-001", "TWH-002"):
        n = len(box.events())
        again(box, pid)
        shapes.append([(e.action, sorted(json.loads(e.after_json or "{}")))
                       for e in box.events()[n:]])
    assert shapes[0] == shapes[1]
    assert not arm_words(repr(box.events()))
    sizes = {len(p.sealed_details) for pid in ("TWH-001", "TWH-002")
             for p in preparations_of(box, pid)}
    assert len(sizes) == 1


@pytest.mark.parametrize(("pid", "reason", "kind", "message"), [
    ("TWH-001", "  ", InvalidInput, "say why the preparation is made again"),
    ("TWH-002", "expired", Refused, "TWH-002 has not been dispensed yet"),
    (WITHDRAWN, "expired", Refused, "TWH-005 has withdrawn"),
    (NOT_RANDOMIZED, "expired", Refused, "TWH-006 has not been randomized"),
])
def test_preparing_again_is_refused_without_a_reason_or_a_preparation(
    box: Box, pid: str, reason: str, kind: type[TrialkitError], message: str
) -> None:
    box.prepare("TWH-001")
    box.clock.advance(hours=25)
    before = box.state()
    with box.tx() as s:
        lots = LOTS["KET"]
        err = box.refused(kind, lambda: reprepare(
            s, box.actor("phil"), pid, reason=reason, password=PASSWORD, clock=box.clock,
            lots=lots, checked_by="pia", checker_password=PASSWORD))
    assert message in err.message
    assert box.state() == before


def test_nothing_is_prepared_again_after_the_infusion(box: Box) -> None:
    box.prepare("TWH-001")
    with box.tx() as s:
        infuse(s, box.actor("cora"), "TWH-001", on=box.clock.now().date(), clock=box.clock)
    box.clock.advance(hours=25)
    before = box.state()
    err = box.refused(Refused, lambda: again(box, "TWH-001"))
    assert "TWH-001 was infused on" in err.message
    assert box.state() == before
    assert "TWH-001" not in [e.participant_id for e in box.queue()]


def test_preparing_again_needs_the_checkers_signature(box: Box) -> None:
    box.prepare("TWH-001")
    box.clock.advance(hours=25)
    before = box.state()
    err = box.refused(AuthenticationFailed,
                      lambda: again(box, "TWH-001", checker_password="not-pias"))
    assert "the check by pia is not signed" in err.message
    assert box.new_actions(before) == ["login.fail"]
    assert len(preparations_of(box, "TWH-001")) == 1
    err = box.refused(Refused, lambda: again(box, "TWH-001", checker="phil"))
    assert "phil prepared it, so cannot also check it" in err.message


@pytest.mark.parametrize("who", ["cora", "mona", ADMIN, "ivan"])
def test_only_pharmacists_prepare_again_and_a_refusal_is_audited(box: Box, who: str) -> None:
    box.prepare("TWH-001")
    box.clock.advance(hours=25)
    err = box.refused(PermissionDenied, lambda: again(box, "TWH-001", by=who))
    assert "lacks the permission to open allocation envelopes" in err.message
    [refusal] = box.events("reprepare.refused")
    assert (refusal.user_name, refusal.entity_id) == (who, "TWH-001")
    assert len(preparations_of(box, "TWH-001")) == 1


def test_an_infusion_after_the_expiry_minute_is_refused_and_prepared_again_accepted(
    box: Box,
) -> None:
    """The defect: an infusion at 15:00 was accepted after an 11:00 expiry (same date)."""
    first = box.prepare("TWH-001")
    assert first.record is not None
    expires = first.record.expires_at
    site = PROTOCOL.site_time("TWH")
    box.clock.at = expires + timedelta(hours=4)
    late = site.local(expires + timedelta(hours=4))
    assert site.local(expires).date() == late.date()  # the same date at the site
    before = box.state()
    with box.tx() as s:
        err = box.refused(PreparationExpired, lambda: infuse(
            s, box.actor("cora"), "TWH-001", on=late.date(), at=late.time(), clock=box.clock))
    assert f"expired at {site.show(expires)}" in err.message and err.exit_code == 1
    assert box.state() == before
    again(box, "TWH-001")
    box.clock.advance(minutes=30)
    now = site.local(box.clock.now())
    with box.tx() as s:
        infused = infuse(s, box.actor("cora"), "TWH-001", on=now.date(),
                         at=now.time().replace(second=0, microsecond=0), clock=box.clock)
    assert infused == now.date()
    event = box.events("participant.infuse")[-1]
    assert "within preparation 2" in (event.reason or "")


# --- refused before any envelope is opened -------------------------------------------------------


def test_dispensing_again_is_refused_and_reprint_is_the_way(box: Box) -> None:
    box.prepare("TWH-001")
    before = box.state()
    for record in ({}, {"lots": LOTS["KET"], "checked_by": "pia"}):
        err = box.refused(Refused, lambda r=record: box.dispense("TWH-001", **r))  # type: ignore[misc]
        assert "TWH-001 was already dispensed" in err.message
        assert err.next_step == NextStep("print-labels-again", "TWH-001")
        assert "--" not in err.message
    assert box.state() == before


@pytest.mark.parametrize(("pid", "message"), [
    (NOT_RANDOMIZED, "TWH-006 has not been randomized: there is no envelope to open"),
    (WITHDRAWN, "TWH-005 has withdrawn: nothing is prepared for them"),
])
def test_a_participant_without_an_envelope_to_open_is_refused(
    box: Box, pid: str, message: str
) -> None:
    before = box.state()
    err = box.refused(Refused, lambda: box.dispense(pid))
    assert err.message == message
    assert box.state() == before


def test_an_unknown_participant_is_bad_input(box: Box) -> None:
    before = box.state()
    box.refused(NotFound, lambda: box.dispense("TWH-999"))
    assert box.state() == before


@pytest.mark.parametrize(("checker", "kind", "message"), [
    ("phil", Refused, "phil prepared it, so cannot also check it"),
    ("cora", Refused, "cora is a coordinator, not a pharmacist"),
    ("nobody", NotFound, "checked by 'nobody': no user of that name"),
    ("", InvalidInput, "name the second pharmacist who checked the preparation"),
])
def test_the_checker_must_be_another_pharmacist(
    box: Box, checker: str, kind: type[TrialkitError], message: str
) -> None:
    before = box.state()
    err = box.refused(kind, lambda: box.dispense("TWH-001", lots=LOTS["KET"],
                                                 checked_by=checker))
    assert message in err.message
    assert box.state() == before


@pytest.mark.parametrize(("lots", "message"), [
    ({"bolus": "K", "infusion": "K2403-118"}, "lot number 'K' for bolus: use 3-20"),
    ({"bolus": "K2403 117", "infusion": "K2403-118"}, "lot number 'K2403 117' for bolus"),
    ({"bolus": "-K2403", "infusion": "K2403-118"}, "lot number '-K2403' for bolus"),
    ({"bolus": "K" * 21, "infusion": "K2403-118"}, "for bolus: use 3-20"),
    ({"bolus": "K2403-117"}, "no lot number for infusion"),
    ({"bolus": "K2403-117", "infusion": "K2", "syringe": "K3"}, "lot for 'syringe'"),
    ({}, "no lot number for bolus, infusion"),
])
def test_lots_of_the_wrong_shape_are_refused(
    box: Box, lots: dict[str, str], message: str
) -> None:
    before = box.state()
    err = box.refused(InvalidInput, lambda: box.dispense("TWH-001", lots=lots,
                                                         checked_by="pia"))
    assert message in err.message
    assert box.state() == before


def test_labels_need_the_preparation_record(box: Box) -> None:
    before = box.state()
    err = box.refused(InvalidInput, lambda: box.dispense("TWH-001", print_labels=True))
    assert "labels are printed with the preparation record" in err.message
    assert box.state() == before


def test_a_wrong_password_opens_nothing(box: Box) -> None:
    before = box.state()
    err = box.refused(AuthenticationFailed,
                      lambda: box.dispense("TWH-001", password="not-my-password"))
    assert err.message == "wrong password for the custodian key"
    assert box.state() == before


def test_a_pharmacist_without_the_list_key_is_refused(box: Box) -> None:
    # added after sealing and not approved by a second person: no list key was wrapped to them
    newt = box.add_pharmacist("newt", approve=False)
    before = box.state()
    with pytest.raises(Refused, match="newt holds no key to the list of TWH-CM"), box.tx() as s:
        dispense(s, newt, "TWH-001", password=PASSWORD, clock=box.clock)
    assert box.state() == before


def test_a_site_bound_pharmacist_cannot_open_another_sites_envelope(box: Box) -> None:
    sid = box.add_pharmacist("sid", sites=["SHS"])
    with pytest.raises(PermissionDenied, match="sid works at SHS, not at TWH"), box.tx() as s:
        dispense(s, sid, "TWH-001", password=PASSWORD, clock=box.clock)


def test_nothing_is_dispensed_after_the_database_lock(box: Box) -> None:
    box.conn.execute(update(Trial).values(locked_at=box.clock.now()))
    before = box.state()
    err = box.refused(Refused, lambda: box.dispense("TWH-001"))
    assert "the database was locked" in err.message
    assert box.state() == before


def test_a_tampered_envelope_is_not_used_and_the_failure_is_audited(box: Box) -> None:
    with box.tx() as s:
        env = s.exec(select(Envelope).where(Envelope.participant_id == "TWH-001")).one()
    tampered = bytes([env.ciphertext[0] ^ 1]) + env.ciphertext[1:]
    box.conn.execute(update(Envelope).where(col(Envelope.id) == env.id)
                     .values(ciphertext=tampered))
    err = box.refused(EnvelopeBroken, lambda: box.dispense("TWH-001"))
    assert "the envelope of TWH-001 (TWH-CM #1) fails its checks" in err.message
    assert [e.entity_id for e in box.events("envelope.broken")] == ["TWH-CM#1"]
    assert box.events("envelope.open") == [] and box.preparation("TWH-001") is None


# --- permissions ---------------------------------------------------------------------------------

DISPENSE = "lacks the permission to open allocation envelopes"
UNBLIND = "lacks the permission to emergency-unblind"


@pytest.mark.parametrize(("who", "action", "missing"), [
    ("cora", "dispense", DISPENSE), ("mona", "dispense", DISPENSE),
    (ADMIN, "dispense", DISPENSE), ("iris", "dispense", DISPENSE), ("ivan", "dispense", DISPENSE),
    ("cora", "label", DISPENSE), ("mona", "label", DISPENSE), ("iris", "label", DISPENSE),
    ("cora", "unblind", UNBLIND), ("mona", "unblind", UNBLIND), (ADMIN, "unblind", UNBLIND),
    ("iris", "unblind", UNBLIND), ("cora", "preparation", DISPENSE),
])
def test_other_roles_are_refused_naming_the_permission_and_the_refusal_is_audited(
    box: Box, who: str, action: str, missing: str
) -> None:
    box.prepare("TWH-001")
    calls: dict[str, Callable[[], Any]] = {
        "dispense": lambda: box.dispense("TWH-002", by=who),
        "label": lambda: box.labels("TWH-001", by=who),
        "unblind": lambda: box.unblind("TWH-001", "curious", by=who),
        "preparation": lambda: box.read("TWH-001", by=who),
    }
    before = box.state()
    err = box.refused(PharmacyRefused, calls[action])
    role = box.actor(who).role.value
    assert err.message == f"{who} ({role}) {missing}"
    [refusal] = box.events(f"{action}.refused")
    assert (refusal.user_name, refusal.entity_id, refusal.reason) == (
        who, "TWH-002" if action == "dispense" else "TWH-001", missing)
    assert box.state() == before


# --- emergency unblinding -------------------------------------------------------------------------


def test_a_custodian_investigator_unblinds_one_participant_with_a_reason(box: Box) -> None:
    u = box.unblind("TWH-002", "  suspected serious adverse reaction ")
    assert (u.participant_id, u.arm_code, u.arm_name) == ("TWH-002", "PLA",
                                                         "Placebo (0.9 % saline)")
    assert (u.reason, u.record) == ("suspected serious adverse reaction", None)
    views = box.participants()
    assert views["TWH-002"].unblinded_emergency and not views["TWH-001"].unblinded_emergency
    [event] = box.events("participant.unblind")
    assert (event.user_name, event.entity_id, event.reason) == (
        "ivan", "TWH-002", "suspected serious adverse reaction")
    assert json.loads(event.after_json or "")["unblinded_emergency"] is True
    assert json.loads(box.events("envelope.open")[-1].after_json or "")["purpose"] == (
        "emergency unblinding")
    assert box.verify().ok


def test_the_monitor_sees_the_unblinding_as_an_event_not_as_an_arm(box: Box) -> None:
    box.unblind("TWH-002", "suspected serious adverse reaction")
    with box.tx() as s:
        seen = audit.log(s, box.actor("mona"))
    assert "participant.unblind" in [e.action for e in seen]
    assert not arm_words(repr(seen))


def test_a_pharmacist_can_unblind_and_sees_the_lots(box: Box) -> None:
    box.prepare("TWH-001")
    u = box.unblind("TWH-001", "anaphylaxis", by="phil")
    assert u.arm_code == "KET" and u.record is not None and u.record.lots == LOTS["KET"]


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_an_unblinding_needs_a_reason(box: Box, reason: str) -> None:
    before = box.state()
    err = box.refused(InvalidInput, lambda: box.unblind("TWH-002", reason))
    assert err.message == "an emergency unblinding needs a reason"
    assert err.needs == ("reason",)
    assert box.state() == before


def test_an_unblinding_needs_the_password_again(box: Box) -> None:
    before = box.state()
    box.refused(AuthenticationFailed,
                lambda: box.unblind("TWH-002", "anaphylaxis", password="guess-again-123"))
    assert box.state() == before


def test_only_a_randomized_participant_can_be_unblinded(box: Box) -> None:
    before = box.state()
    err = box.refused(Refused, lambda: box.unblind(NOT_RANDOMIZED, "anaphylaxis"))
    assert "has not been randomized" in err.message
    assert box.state() == before


# --- nothing blinded names an arm ----------------------------------------------------------------


def test_no_audit_event_names_an_arm_and_both_arms_leave_the_same_shape(box: Box) -> None:
    box.prepare("TWH-001")
    box.prepare("TWH-002")
    box.labels("TWH-001")
    box.labels("TWH-002")
    box.unblind("TWH-001", "anaphylaxis")
    box.unblind("TWH-002", "anaphylaxis")
    events = box.events()
    for e in events:
        shown = " ".join(filter(None, (e.action, e.entity_id, e.before_json, e.after_json,
                                       e.reason)))
        assert not arm_words(shown), e.action

    def shape(pid: str) -> list[tuple[str, int, int]]:
        mine = [e for e in events if pid in (e.entity_id, json.loads(e.after_json or "{}")
                                              .get("participant"))]
        return [(e.action, len(e.before_json or ""), len(e.after_json or "")) for e in mine
                if e.action != "participant.randomize"]

    assert shape("TWH-001") == shape("TWH-002")
    assert box.verify().ok


def test_a_preparation_changed_behind_trialkits_back_is_caught(box: Box) -> None:
    box.prepare("TWH-001")
    box.conn.execute(update(Preparation).values(label_prints=7))
    report = box.verify()
    assert not report.ok and "preparation 'TWH-001' no longer matches" in (report.problem or "")


def test_the_queue_shows_the_infusion_day_the_coordinator_planned(
    engine: Engine, admin: Actor, clock: SteppingClock
) -> None:
    from trialkit.domain.errors import InvalidInput as _InvalidInput
    from trialkit.domain.errors import Refused as _Refused
    from trialkit.services.enrolment.participants import plan_infusion
    from trialkit.services.pharmacy.dispensing import dispense_queue

    team = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=4)
    pid = ready_to_randomize(engine, team["cora"], clock).id
    with transaction(engine) as s:
        with pytest.raises(_Refused, match="not been randomized"):
            plan_infusion(s, team["cora"], pid, on=clock.now().date(), clock=clock)
    with transaction(engine) as s:
        randomize(s, team["cora"], pid, clock=clock)
    tomorrow = clock.now().date() + timedelta(days=1)
    with transaction(engine) as s:
        with pytest.raises(_InvalidInput, match="in the past"):
            plan_infusion(s, team["cora"], pid, on=tomorrow - timedelta(days=2), clock=clock)
    with transaction(engine) as s:
        plan_infusion(s, team["cora"], pid, on=tomorrow, clock=clock)
    with read_only(engine) as s:
        [entry] = [e for e in dispense_queue(s, team["phil"], clock=clock)
                   if e.participant_id == pid]
        assert entry.infusion_date == tomorrow.isoformat()
        assert verification.verify(s).ok
