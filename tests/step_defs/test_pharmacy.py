"""Steps for ``features/pharmacy.feature``: the research pharmacist's queue, opening an
envelope, recording a checked preparation, identical blinded labels, and the refusals.

Every scenario runs on SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL, through the
services the command line and the terminal UI call. The trial is built once per backend
(``tests.db.test_pharmacy.build_world``: lists forced to read KET, PLA, KET, PLA, ... so the
Background's table of treatments holds) and each scenario runs in a window on it whose
changes are rolled back at its end. ``PharmacyWorld`` is shared with the unblinding steps."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when
from sqlmodel import col, select

from tests.builders import PROTOCOL
from tests.conftest import PASSWORD
from tests.db.test_pharmacy import (
    ARMS,
    LOTS,
    WEIGHTS,
    Box,
    World,
    trial_on_each_backend,
    window,
)
from tests.unit.test_labels import differences, page_texts, render
from trialkit.domain.codes import check_label_code
from trialkit.domain.dosing import format_ml, format_number
from trialkit.domain.errors import InvalidInput, Refused, TrialkitError
from trialkit.render.labels import LabelSheet, render_labels
from trialkit.services.diary.entries import infuse
from trialkit.services.integrity import audit
from trialkit.services.pharmacy.dispensing import Dispensing, reprepare
from trialkit.store.models import Preparation

scenarios("pharmacy.feature")

TREATMENTS = {"ketamine": "KET", "placebo": "PLA"}
TREATMENT_WORDS = re.compile(r"\b(?:ket|pla|ketamine|placebo|saline|chloride)\b", re.I)


def names_a_treatment(shown: str) -> bool:
    return bool(TREATMENT_WORDS.search(shown.replace(PROTOCOL.trial.title, "<title>")))


@dataclass
class PharmacyWorld:
    """One scenario's window on the trial, who says "I", and what happened last."""

    box: Box
    me: str = "phil"
    outcome: Any = None  # what the last "When" gave: a result or the error it raised
    before: tuple[int, int, int, str] = (0, 0, 0, "")  # the stored state before that "When"
    events_before: int = 0
    labels: dict[str, LabelSheet] = field(default_factory=dict)
    failures_before: int = 0  # a user's failed sign-ins before the "When"

    def attempt(self, action: Callable[[], Any]) -> None:
        """Do what a "When" step says, keeping the result or the refusal."""
        self.before = self.box.state()
        self.events_before = len(self.box.events())
        try:
            self.outcome = action()
        except TrialkitError as err:
            self.outcome = err

    def error(self, kind: type[TrialkitError]) -> TrialkitError:
        assert isinstance(self.outcome, kind), f"expected {kind.__name__}, got {self.outcome!r}"
        return self.outcome

    def new_events(self) -> list[str]:
        return [e.action for e in self.box.events()[self.events_before:]]

    def audit_log(self, reader: str) -> str:
        with self.box.tx() as s:
            return repr(audit.log(s, self.box.actor(reader)))


trial = trial_on_each_backend("pharmacy-bdd")


@pytest.fixture(autouse=True)
def world(trial: World) -> Iterator[PharmacyWorld]:
    """Autouse, so that every scenario is collected once per backend."""
    with window(trial) as box:
        yield PharmacyWorld(box)


def lots_of(text: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in text.split(",") if part.strip())
    return {key.strip(): value.strip() for key, _eq, value in pairs}


# --- Background ----------------------------------------------------------------------------------


@given(parsers.parse('the KetHead trial is running with the pharmacists "{one}" and "{other}"'))
def pharmacists(world: PharmacyWorld, one: str, other: str) -> None:
    for name in (one, other):
        assert world.box.actor(name).role.value == "pharmacist"


@given(parsers.parse('these participants have been randomized at "{site}":'))
def randomized_participants(world: PharmacyWorld, site: str, datatable: list[list[str]]) -> None:
    header, *rows = datatable
    assert header == ["participant", "weight", "treatment"]
    seen = world.box.participants()
    for pid, weight, treatment in rows:
        assert seen[pid].site == site and seen[pid].status == "randomized"
        assert seen[pid].weight_kg == WEIGHTS[pid] == float(weight)
        assert ARMS[pid] == TREATMENTS[treatment]  # what the forced lists hold


@given(parsers.parse('I am the pharmacist "{name}"'))
def i_am_the_pharmacist(world: PharmacyWorld, name: str) -> None:
    assert world.box.actor(name).role.value == "pharmacist"
    world.me = name


# --- the queue -----------------------------------------------------------------------------------


@then(parsers.parse('my dispense queue at "{site}" lists "{pids}"'))
def queue_lists(world: PharmacyWorld, site: str, pids: str) -> None:
    queue = world.box.queue(by=world.me, site=site)
    assert [e.participant_id for e in queue] == [p.strip() for p in pids.split(",")]


@then("the queue shows each participant's weight and nothing about the treatment")
def queue_is_blinded(world: PharmacyWorld) -> None:
    queue = world.box.queue(by=world.me)
    assert {e.participant_id: e.weight_kg for e in queue} == {
        pid: WEIGHTS[pid] for pid in (e.participant_id for e in queue)}
    assert not names_a_treatment(repr(queue))


# --- opening an envelope -------------------------------------------------------------------------


@when(parsers.parse('I open the envelope of "{pid}" with my password'))
def open_envelope(world: PharmacyWorld, pid: str) -> None:
    world.attempt(lambda: world.box.dispense(pid, by=world.me))


@when(parsers.parse('I open the envelope of "{pid}" with the password "{password}"'))
def open_with_password(world: PharmacyWorld, pid: str, password: str) -> None:
    world.attempt(lambda: world.box.dispense(pid, by=world.me, password=password))


@when(parsers.parse('"{who}" tries to open the envelope of "{pid}"'))
def someone_opens(world: PharmacyWorld, who: str, pid: str) -> None:
    world.attempt(lambda: world.box.dispense(pid, by=who))


@then(parsers.parse('I am shown that "{pid}" is to receive {treatment}'))
def shown_treatment(world: PharmacyWorld, pid: str, treatment: str) -> None:
    d = world.outcome
    assert isinstance(d, Dispensing), d
    assert (d.participant_id, d.arm_code) == (pid, TREATMENTS[treatment])
    assert d.arm_name.lower().startswith(treatment)


@then(parsers.parse("I am told to draw up a bolus syringe of {bolus} and an infusion bag of "
                    "{bag} to run at {rate} for {hours:d} h"))
def told_how_to_prepare(world: PharmacyWorld, bolus: str, bag: str, rate: str,
                        hours: int) -> None:
    plan = world.outcome.plan
    syringe, infusion = plan.dose("bolus"), plan.dose("infusion")
    assert f"{format_ml(syringe.volume_ml)} mL" == bolus
    assert f"{format_ml(infusion.volume_ml)} mL" == bag
    assert f"{format_ml(infusion.rate_ml_h)} mL/h" == rate
    assert format_number(infusion.hours) == str(hours)


@then(parsers.parse('the audit trail shows that I opened the envelope of "{pid}", without '
                    "the treatment"))
def opening_audited(world: PharmacyWorld, pid: str) -> None:
    [opening] = world.box.events("envelope.open")
    assert opening.user_name == world.me
    assert json.loads(opening.after_json or "")["participant"] == pid
    assert not names_a_treatment(world.audit_log("mona"))


# --- recording the preparation -------------------------------------------------------------------


def record(world: PharmacyWorld, pid: str, lots: str, checker: str, labels: bool) -> None:
    def act() -> Dispensing:
        d = world.box.dispense(pid, by=world.me, lots=lots_of(lots), checked_by=checker,
                               print_labels=labels)
        if d.labels is not None:
            world.labels[pid] = d.labels
        world.box.clock.advance(minutes=9)
        return d

    world.attempt(act)


@when(parsers.parse('I record the preparation of "{pid}" with the lots "{lots}", checked by '
                    '"{checker}"'))
def record_preparation(world: PharmacyWorld, pid: str, lots: str, checker: str) -> None:
    record(world, pid, lots, checker, labels=False)


@when(parsers.parse('I record the preparation of "{pid}" with the lots "{lots}", checked by '
                    '"{checker}", and print its labels'))
def record_and_label(world: PharmacyWorld, pid: str, lots: str, checker: str) -> None:
    record(world, pid, lots, checker, labels=True)


@when(parsers.parse('"{checker}" checks my preparation of "{pid}" with the lots "{lots}" and '
                    "signs with her password"))
def checked_and_signed(world: PharmacyWorld, checker: str, pid: str, lots: str) -> None:
    record(world, pid, lots, checker, labels=False)  # every user's password is PASSWORD


@when(parsers.parse('"{checker}" checks my preparation of "{pid}" with the lots "{lots}" and '
                    'signs with the password "{password}"'))
def checked_with_password(world: PharmacyWorld, checker: str, pid: str, lots: str,
                          password: str) -> None:
    world.failures_before = world.box.failed_sign_ins(checker)
    world.attempt(lambda: world.box.dispense(pid, by=world.me, lots=lots_of(lots),
                                             checked_by=checker, checker_password=password))


@then(parsers.parse('the record says "{checker}" signed the check when it was recorded'))
def check_signed(world: PharmacyWorld, checker: str) -> None:
    record = world.outcome.record
    assert (record.checked_by, record.checked_at) == (checker, record.prepared_at)
    [login, *_rest] = world.box.events()[world.events_before:]
    assert (login.action, login.user_name) == ("login", checker)


@then(parsers.parse('nothing has been recorded but a failed sign-in of "{who}", which counts '
                    "towards locking her account"))
def only_a_failed_sign_in(world: PharmacyWorld, who: str) -> None:
    events, preps, flagged, _head = world.box.state()
    assert (events, preps, flagged) == (world.before[0] + 1, *world.before[1:3])
    assert world.new_events() == ["login.fail"]
    assert world.box.events()[-1].user_name == who
    assert world.box.failed_sign_ins(who) == world.failures_before + 1


@given(parsers.parse('I have recorded the preparation of "{pid}", checked by "{checker}"'))
def have_recorded(world: PharmacyWorld, pid: str, checker: str) -> None:
    world.box.prepare(pid, by=world.me, checker=checker)


@then(parsers.parse('the preparation of "{pid}" is recorded as prepared by "{preparer}" and '
                    'checked by "{checker}"'))
def recorded_as(world: PharmacyWorld, pid: str, preparer: str, checker: str) -> None:
    prep = world.box.preparation(pid)
    assert prep is not None and (prep.prepared_by, prep.checked_by) == (preparer, checker)


@then(parsers.parse("it expires {hours:d} hours after it was prepared"))
def expires_after(world: PharmacyWorld, hours: int) -> None:
    record = world.outcome.record
    assert record.expires_at - record.prepared_at == timedelta(hours=hours)
    assert hours == PROTOCOL.dosing.expiry_hours


@then(parsers.parse('the coordinator sees "{pid}" as "{status}"'))
def coordinator_sees(world: PharmacyWorld, pid: str, status: str) -> None:
    assert world.box.participants("cora")[pid].status == status


@then(parsers.parse('"{who}" can read the lots "{one}" and "{other}" of "{pid}" again'))
def can_read_lots(world: PharmacyWorld, who: str, one: str, other: str, pid: str) -> None:
    prep = world.box.preparation(pid)
    assert prep is not None
    assert one.encode() not in prep.sealed_details and other.encode() not in prep.sealed_details
    read = world.box.read(pid, by=who)
    assert read.record is not None and sorted(read.record.lots.values()) == sorted([one, other])


# --- refusals ------------------------------------------------------------------------------------


@then(parsers.parse('I am told the input is wrong: "{message}"'))
def told_input_wrong(world: PharmacyWorld, message: str) -> None:
    err = world.error(InvalidInput)
    assert message in err.message and err.exit_code == 2


@then(parsers.parse('I am refused: "{message}"'))
@then(parsers.parse('they are refused: "{message}"'))
def refused(world: PharmacyWorld, message: str) -> None:
    err = world.error(Refused)
    assert message in err.message and err.exit_code == 1


@then("no envelope has been opened and nothing has been recorded")
def nothing_recorded(world: PharmacyWorld) -> None:
    assert world.box.state() == world.before
    assert world.new_events() == []


@then("no envelope has been opened and nothing has been recorded but the refusal")
def nothing_recorded_but_the_refusal(world: PharmacyWorld) -> None:
    assert world.box.state() == world.before
    [refusal] = world.new_events()
    assert refusal.endswith(".refused")


@then("no envelope has been opened")
def no_envelope_opened(world: PharmacyWorld) -> None:
    assert "envelope.open" not in world.new_events()
    assert world.box.state()[1] == world.before[1]


@then(parsers.parse('the audit trail shows that "{who}" was refused'))
def refusal_audited(world: PharmacyWorld, who: str) -> None:
    [refusal] = [e for e in world.box.events()[world.events_before:]
                 if e.action.endswith(".refused")]
    assert refusal.user_name == who and "lacks the permission" in (refusal.reason or "")


# --- labels --------------------------------------------------------------------------------------


@when(parsers.parse('I print the labels of "{pid}" again'))
def reprint(world: PharmacyWorld, pid: str) -> None:
    world.attempt(lambda: world.box.labels(pid, by=world.me))


@then(parsers.parse('the labels say "{note}"'))
def labels_say(world: PharmacyWorld, note: str) -> None:
    sheet = world.outcome
    assert isinstance(sheet, LabelSheet), sheet
    assert all(note in page for page in page_texts(render_labels(sheet)))


@then(parsers.parse('the audit trail shows that I reprinted the labels of "{pid}"'))
def reprint_audited(world: PharmacyWorld, pid: str) -> None:
    [event] = world.box.events("label.reprint")
    assert (event.user_name, event.entity_id) == (world.me, pid)


@then(parsers.parse('each of them has {count:d} labels: a "{first}" and an "{second}"'))
def labels_per_participant(world: PharmacyWorld, count: int, first: str, second: str) -> None:
    assert len(world.labels) == 2
    for sheet in world.labels.values():
        pages = page_texts(render_labels(sheet))
        assert len(pages) == count
        assert first in pages[0] and second in pages[1]


@then(parsers.parse('every label says "{wording}" and names neither a product nor a lot'))
def blinded_wording(world: PharmacyWorld, wording: str) -> None:
    products = {p for prep in PROTOCOL.dosing.preparations for p in prep.products.values()}
    for sheet in world.labels.values():
        for page in page_texts(render_labels(sheet)):
            assert wording in page
            assert not names_a_treatment(page.replace(wording, ""))
            assert not [p for p in products if p in page]
            assert not re.search(r"K2403|S2311", page)


@then(parsers.parse('the labels of "{one}" and "{other}" differ only in the participants\' own '
                    "identifiers and times"))
def labels_differ_only_in_identifiers(world: PharmacyWorld, one: str, other: str) -> None:
    a, b = world.labels[one], world.labels[other]
    own = ("participant_id", "randomization_number", "label_code", "prepared_at", "expires_at")
    assert a != b
    assert dataclasses.replace(b, **{f: getattr(a, f) for f in own}) == a

    def normalised(sheet: LabelSheet) -> list[str]:
        pages = []
        for page in page_texts(render_labels(sheet)):
            for f in own:
                value = getattr(sheet, f)
                page = page.replace(f"{value:%Y-%m-%d %H:%M}" if isinstance(value, datetime)
                                    else value, f"<{f}>")
            pages.append(page)
        return pages

    assert normalised(a) == normalised(b)
    for page_a, page_b in zip(render(render_labels(a)), render(render_labels(b)), strict=True):
        outside, _inside = differences(page_a, page_b)
        assert not outside


# --- label codes ---------------------------------------------------------------------------------

CODE_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # letters and digits, without I, L, O, U


@then(parsers.parse('the label codes of "{pids}" are four letters or digits, a dash, four '
                    "more, a dash and a check letter or digit"))
def label_codes_are_letters_and_digits(world: PharmacyWorld, pids: str) -> None:
    seen = world.box.participants()
    for pid in (p.strip() for p in pids.split(",")):
        code = seen[pid].label_code
        assert code is not None
        assert re.fullmatch(rf"[{CODE_CHARS}]{{4}}-[{CODE_CHARS}]{{4}}-[{CODE_CHARS}]", code)
        assert check_label_code(code.lower()) == code


@then("any of those label codes typed with one character wrong is refused or matches nobody")
def mistyped_codes_are_caught(world: PharmacyWorld) -> None:
    codes = {v.label_code for v in world.box.participants().values() if v.label_code}
    for code in codes:
        plain = code.replace("-", "")
        for at, typed in itertools.product(range(len(plain)), CODE_CHARS):
            if plain[at] == typed:
                continue
            wrong = plain[:at] + typed + plain[at + 1:]
            try:
                accepted = check_label_code(wrong)
            except InvalidInput as err:
                assert "check character does not match" in err.message
            else:  # a code of an older database's scheme, by chance: it names nobody
                assert accepted not in codes


@then(parsers.parse('a label code printed before this change, "{code}", is still accepted as '
                    "typed"))
def legacy_code_accepted(code: str) -> None:
    assert check_label_code(code) == code
    assert check_label_code(code.lower().replace("-", " ")) == code


# --- preparing again -----------------------------------------------------------------------------


@when(parsers.parse('the preparation of "{pid}" has expired'))
def preparation_expired(world: PharmacyWorld, pid: str) -> None:
    prep = world.box.preparation(pid)
    assert prep is not None
    world.box.clock.at = prep.expires_at + timedelta(minutes=1)


@then(parsers.parse('the queue says the preparation of "{pid}" expired and is to be prepared '
                    "again"))
def queue_says_expired(world: PharmacyWorld, pid: str) -> None:
    prep = world.box.preparation(pid)
    assert prep is not None
    entries = {e.participant_id: e for e in world.box.queue(by=world.me)}
    assert entries[pid].expired_at == prep.expires_at
    assert [p for p, e in entries.items() if e.expired_at is not None] == [pid]


@when(parsers.parse('I prepare "{pid}" again because "{reason}" with the lots "{lots}", checked '
                    'by "{checker}"'))
def prepare_again(world: PharmacyWorld, pid: str, reason: str, lots: str, checker: str) -> None:
    def act() -> Dispensing:
        with world.box.tx() as s:
            d = reprepare(s, world.box.actor(world.me), pid, reason=reason, password=PASSWORD,
                          clock=world.box.clock, lots=lots_of(lots), checked_by=checker,
                          checker_password=PASSWORD, print_labels=True)
        assert d.labels is not None
        world.labels[pid] = d.labels
        return d

    world.attempt(act)


@when(parsers.parse('I prepare "{pid}" again without saying why'))
def prepare_again_without_reason(world: PharmacyWorld, pid: str) -> None:
    def act() -> Dispensing:
        with world.box.tx() as s:
            return reprepare(s, world.box.actor(world.me), pid, reason=" ", password=PASSWORD,
                             clock=world.box.clock, lots=LOTS[ARMS[pid]], checked_by="pia",
                             checker_password=PASSWORD)

    world.attempt(act)


def preparations(world: PharmacyWorld, pid: str) -> list[Preparation]:
    with world.box.tx() as s:
        return list(s.exec(select(Preparation).where(Preparation.participant_id == pid)
                           .order_by(col(Preparation.number))).all())


@then(parsers.parse('the first preparation of "{pid}" is void, by me, because "{reason}"'))
def first_is_void(world: PharmacyWorld, pid: str, reason: str) -> None:
    first = preparations(world, pid)[0]
    assert (first.number, first.voided_by, first.void_reason) == (1, world.me, reason)
    assert first.voided_at == world.box.clock.now()


@then(parsers.parse('a second preparation of "{pid}" is recorded from the same envelope, '
                    'checked by "{checker}"'))
def second_recorded(world: PharmacyWorld, pid: str, checker: str) -> None:
    d = world.outcome
    assert isinstance(d, Dispensing) and d.record is not None, d
    assert (d.record.number, d.record.checked_by, d.record.checked_at) == (
        2, checker, world.box.clock.now())
    assert (d.arm_code, d.envelope) == (ARMS[pid], f"{pid[:3]}-CM #{int(pid[4:])}")
    current = world.box.preparation(pid)
    assert current is not None and current.number == 2 and current.voided_at is None
    assert world.box.participants()[pid].status == "dispensed"


@then(parsers.parse('its labels say "{note}"'))
def its_labels_say(world: PharmacyWorld, note: str) -> None:
    d = world.outcome
    assert all(note in page for page in page_texts(render_labels(d.labels)))


@then("the audit trail shows the void and the new preparation with my reason, without the "
      "treatment")
def void_audited(world: PharmacyWorld) -> None:
    actions = [(e.action, e.user_name, e.reason)
               for e in world.box.events()[world.events_before:]]
    reason = preparations(world, world.outcome.participant_id)[0].void_reason
    assert actions == [("login", "pia", None), ("envelope.open", world.me, None),
                       ("preparation.void", world.me, reason),
                       ("preparation.record", world.me, reason)]
    assert not names_a_treatment(world.audit_log("mona"))


@when(parsers.parse('the coordinator records the infusion of "{pid}" four hours after its '
                    "preparation expired, on the same day"))
def infuse_after_expiry(world: PharmacyWorld, pid: str) -> None:
    prep = world.box.preparation(pid)
    assert prep is not None
    site = PROTOCOL.site_time(pid[:3])
    at = prep.expires_at + timedelta(hours=4)
    assert site.date_of(at) == site.date_of(prep.expires_at)  # the same day at the site
    world.box.clock.at = at + timedelta(minutes=30)
    local = site.local(at)

    def act() -> object:
        with world.box.tx() as s:
            return infuse(s, world.box.actor("cora"), pid, on=local.date(), at=local.time(),
                          clock=world.box.clock)

    world.attempt(act)


@then(parsers.parse('"{pid}" is not infused'))
def not_infused(world: PharmacyWorld, pid: str) -> None:
    assert world.box.participants()[pid].status == "dispensed"
    assert "participant.infuse" not in world.new_events()
