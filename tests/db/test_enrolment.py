"""Enrolment as a coordinator does it: screening, consent, withdrawal and randomization,
on their own sites only, never learning an arm. Every refusal changes nothing: no
participant, no envelope, no audit event.

The trial (three envelopes sealed per stratum) is built once per backend; each test works
in a window on it that is rolled back (see ``tests/db/test_allocation.py``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from tests.conftest import ADMIN, BACKENDS
from tests.db.test_allocation import (
    WORK,
    Box,
    World,
    build_world,
    refused_changing_nothing,
    window,
)
from trialkit.domain.codes import check_label_code
from trialkit.domain.errors import (
    InvalidInput,
    NextStep,
    NotFound,
    PermissionDenied,
    Refused,
    TrialkitError,
)
from trialkit.services.enrolment.participants import (
    ParticipantView,
    Randomization,
    consent,
    list_participants,
    withdraw,
)
from trialkit.services.integrity.verification import verify
from trialkit.store.models import AuditEvent, Envelope, Participant

PER_STRATUM = 3


@pytest.fixture(scope="module", params=BACKENDS)
def trial(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with build_world(request.param, tmp_path_factory.mktemp("enrol"),
                     per_stratum=PER_STRATUM) as w:
        yield w


@pytest.fixture
def box(trial: World) -> Iterator[Box]:
    with window(trial) as b:
        yield b


def state(box: Box) -> tuple[Any, ...]:
    """Everything a refused action must leave as it was."""
    with box.tx() as s:
        participants = [
            (p.id, p.eligible, p.consent_date, p.withdrawn_at, p.randomization_number,
             p.label_code)
            for p in s.exec(select(Participant).order_by(col(Participant.id)))
        ]
        bound = s.exec(select(Envelope.stratum_code, Envelope.seq, Envelope.participant_id)
                       .where(col(Envelope.participant_id).is_not(None))).all()
        events = s.exec(select(AuditEvent.seq, AuditEvent.action).where(WORK)
                        .order_by(col(AuditEvent.seq))).all()
    return participants, sorted(bound), list(events)


def refused(box: Box, error: type[TrialkitError], action: Any, *args: Any,
            **kwargs: Any) -> TrialkitError:
    return refused_changing_nothing(box, state, error, action, *args, **kwargs)


def withdraw_by(box: Box, pid: str, *, by: str = "cora",
                reason: str = "moved away") -> ParticipantView:
    with box.tx() as s:
        return withdraw(s, box.actor(by), pid, reason=reason, clock=box.clock)


def consent_on(box: Box, pid: str, *, days: int = 0, form: str = "2.0",
               by: str = "cora") -> ParticipantView:
    with box.tx() as s:
        return consent(s, box.actor(by), pid, on=box.clock.now().date() + timedelta(days=days),
                       form_version=form, clock=box.clock)


def visible(box: Box, who: str, **filters: Any) -> list[str]:
    with box.tx() as s:
        return [v.id for v in list_participants(s, box.actor(who), **filters)]


# --- screening ---------------------------------------------------------------------------------


def test_screening_numbers_are_given_per_site(box: Box) -> None:
    ids = [box.screen(site=site).id for site in ("TWH", "TWH", "SHS", "TWH", "shs")]
    assert ids == ["TWH-001", "TWH-002", "SHS-001", "TWH-003", "SHS-002"]


def test_an_eligible_participant_is_screened_into_their_stratum(box: Box) -> None:
    v = box.screen(site="SHS", headache_type="cdh", age=18, sex="m", weight_kg=30)
    assert (v.id, v.site, v.stratum, v.status, v.eligible, v.failed) == (
        "SHS-001", "SHS", "SHS-CDH", "eligible", True, ())
    assert (v.age, v.sex, v.weight_kg) == (18, "M", 30)
    assert (v.randomization_number, v.label_code, v.consent_date) == (None, None, None)
    [event] = box.events("participant.screen")
    assert (event.user_name, event.entity_id) == ("cora", "SHS-001")
    assert json.loads(event.after_json or "{}")["eligible"] is True


@pytest.mark.parametrize(("changes", "failed"), [
    ({"age": 16}, ("I1_age",)),
    ({"age": 76}, ("I1_age",)),
    ({"answers": {"E05_cerebrovascular": "yes"}}, ("E05_cerebrovascular",)),
    ({"answers": {"I2_cdh": "no"}}, ("I2_cdh",)),
    ({"age": 17, "answers": {"E01_pregnancy": "Y", "E16_opioids": "true"}},
     ("I1_age", "E01_pregnancy", "E16_opioids")),
], ids=["age 16", "age 76", "an exclusion met", "an inclusion not met", "three failures"])
def test_an_ineligible_person_is_kept_as_a_screen_failure(
    box: Box, changes: dict[str, Any], failed: tuple[str, ...]
) -> None:
    v = box.screen(**changes)
    assert (v.eligible, v.failed, v.status) == (False, failed, "ineligible")
    with box.tx() as s:
        [kept] = list_participants(s, box.actor("cora"), status="ineligible")
    assert (kept.id, kept.failed) == (v.id, failed)
    [event] = box.events("participant.screen")
    assert json.loads(event.after_json or "{}")["failed"] == list(failed)


BAD_SCREENINGS = [
    pytest.param({"site": "XYZ"}, "unknown site 'XYZ'", id="unknown site"),
    pytest.param({"factors": {"headache_type": "TTH"}}, "unknown level 'TTH'",
                 id="unknown stratum level"),
    pytest.param({"factors": {"headache_type": "CM", "sex": "F"}},
                 "unknown stratification factor 'sex'", id="unknown factor"),
    pytest.param({"factors": {}}, "missing stratification factor headache_type",
                 id="missing factor"),
    pytest.param({"age": 200}, "age 200 is not plausible", id="age 200"),
    pytest.param({"age": -1}, "age -1 is not plausible", id="age -1"),
    pytest.param({"weight_kg": 20}, "weight 20 kg is outside the plausible range",
                 id="weight 20"),
    pytest.param({"weight_kg": 300}, "weight 300 kg is outside the plausible range",
                 id="weight 300"),
    pytest.param({"weight_kg": float("nan")}, "outside the plausible range", id="weight NaN"),
    pytest.param({"unanswered": ("E09_glaucoma",)},
                 "missing answers for 1 criteria: E09_glaucoma", id="missing answer"),
    pytest.param({"answers": {"E99_made_up": "no"}}, "unknown criterion 'E99_made_up'",
                 id="unknown criterion"),
    pytest.param({"answers": {"E09_glaucoma": "maybe"}}, "'maybe' is not yes or no",
                 id="answer maybe"),
    pytest.param({"sex": "X"}, "sex 'X': use F or M", id="sex X"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_SCREENINGS)
def test_bad_screening_input_is_refused_as_invalid_and_records_nothing(
    box: Box, changes: dict[str, Any], message: str
) -> None:
    err = refused(box, InvalidInput, box.screen, **changes)
    assert message in err.message
    assert err.exit_code == 2


# --- consent -----------------------------------------------------------------------------------


def test_consent_is_recorded_with_its_date_and_form_version(box: Box) -> None:
    pid = box.screen().id
    box.clock.advance(days=2)
    v = consent_on(box, pid, days=-1)
    assert (v.status, v.consent_date) == ("consented", "2026-03-03")
    [event] = box.events("participant.consent")
    after = json.loads(event.after_json or "{}")
    assert (after["consent_date"], after["consent_form_version"]) == ("2026-03-03", "2.0")
    assert json.loads(event.before_json or "{}")["consent_date"] is None


@pytest.mark.parametrize(("days", "form", "message"), [
    (1, "2.0", "is in the future"),
    (-1, "2.0", "is before screening"),
    (0, "1.0", "consent form version '1.0': the protocol has 2.0"),
    (0, "", "consent form version ''"),
], ids=["tomorrow", "before screening", "unknown form version", "no form version"])
def test_a_bad_consent_is_invalid_input(box: Box, days: int, form: str, message: str) -> None:
    pid = box.screen().id
    err = refused(box, InvalidInput, consent_on, box, pid, days=days, form=form)
    assert message in err.message and err.exit_code == 2


def test_an_ineligible_person_cannot_consent(box: Box) -> None:
    pid = box.screen(age=16).id
    err = refused(box, Refused, consent_on, box, pid)
    assert not isinstance(err, InvalidInput)
    assert err.message == f"{pid} is not eligible (failed I1_age)" and err.exit_code == 1


def test_consent_is_recorded_once(box: Box) -> None:
    pid = box.screen().id
    consent_on(box, pid)
    err = refused(box, Refused, consent_on, box, pid)
    assert "already consented on 2026-03-02" in err.message


# --- withdrawal ----------------------------------------------------------------------------------


def test_withdrawal_keeps_the_participant_and_the_reason(box: Box) -> None:
    pid = box.screen().id
    consent_on(box, pid)
    v = withdraw_by(box, pid, reason="  moved to another city ")
    assert v.status == "withdrawn" and v.consent_date == "2026-03-02"
    [event] = box.events("participant.withdraw")
    assert event.reason == "moved to another city"
    assert visible(box, "cora", status="withdrawn") == [pid]
    err = refused(box, Refused, withdraw_by, box, pid)
    assert "already withdrawn" in err.message


def test_withdrawal_needs_a_reason(box: Box) -> None:
    pid = box.screen().id
    err = refused(box, InvalidInput, withdraw_by, box, pid, reason="   ")
    assert "reason is required" in err.message


# --- randomization -------------------------------------------------------------------------------


def test_randomizing_gives_a_number_and_a_label_code_and_takes_the_next_envelope(
    box: Box,
) -> None:
    first, second, other = (box.screen(headache_type=h).id for h in ("CM", "CM", "CDH"))
    for pid in (first, second, other):
        consent_on(box, pid)
    box.baseline(first, second, other)
    results = [box.randomize(pid) for pid in (second, other, first)]

    assert [field.name for field in dataclasses.fields(Randomization)] == [
        "participant_id", "randomization_number", "label_code", "already"]
    assert [(r.participant_id, r.randomization_number, r.already) for r in results] == [
        (second, "R0001", False), (other, "R0002", False), (first, "R0003", False)]
    codes = [r.label_code for r in results]
    assert [check_label_code(c) for c in codes] == codes and len(set(codes)) == 3
    # in each stratum the envelopes are taken in order, whoever comes first (three were
    # released per stratum; the rest of the last whole block is held back, unused)
    cm = box.envelopes("TWH-CM")
    assert [(e["participant_id"], e["seq"]) for e in cm[:3]] == [
        (second, 1), (first, 2), (None, 3)]
    assert {e["participant_id"] for e in cm[3:]} <= {None}
    assert [e["participant_id"] for e in box.envelopes("TWH-CDH")][:3] == [other, None, None]
    with box.tx() as s:
        views = {v.id: v for v in list_participants(s, box.actor("cora"))}
    assert (views[first].status, views[first].randomization_number,
            views[first].label_code) == ("randomized", "R0003", codes[2])
    events = box.events("participant.randomize")
    assert [(e.entity_id, e.user_name) for e in events] == [
        (second, "cora"), (other, "cora"), (first, "cora")]
    assert json.loads(events[0].after_json or "{}")["envelope"] == "TWH-CM#1"


def test_the_randomize_event_records_the_participant_before_and_after(box: Box) -> None:
    pid = box.screen().id
    consented_on = box.clock.now().date().isoformat()
    consent_on(box, pid)
    box.baseline(pid)
    r = box.randomize(pid)
    [event] = box.events("participant.randomize")
    before, after = json.loads(event.before_json or "{}"), json.loads(event.after_json or "{}")
    # what randomizing changes, and nothing else
    assert {k for k in after if after[k] != before.get(k)} == {
        "randomization_number", "label_code", "envelope"}
    assert (before["randomization_number"], before["label_code"], before["envelope"]) == (
        None, None, None)
    assert (after["randomization_number"], after["label_code"], after["envelope"]) == (
        "R0001", r.label_code, "TWH-CM#1")
    assert (after["id"], after["site"], after["stratum"], after["consent_date"]) == (
        pid, "TWH", "TWH-CM", consented_on)
    assert not {"arm", "arm_code", "treatment"} & set(after)  # blinded
    with box.tx() as s:
        report = verify(s)
    assert report.ok, report.problem


def test_randomizing_an_unknown_participant_is_invalid_input(box: Box) -> None:
    err = refused(box, NotFound, box.randomize, "TWH-999")
    assert err.message == "no participant 'TWH-999'" and err.exit_code == 2


@pytest.mark.parametrize(("prepare", "message"), [
    ("screened", "has not consented yet"),
    ("ineligible", "is not eligible (failed E14_ptsd)"),
    ("withdrawn", "has withdrawn"),
])
def test_only_a_consented_eligible_participant_is_randomized(
    box: Box, prepare: str, message: str
) -> None:
    changes: dict[str, Any] = {"answers": {"E14_ptsd": "yes"}} if prepare == "ineligible" else {}
    pid = box.screen(**changes).id
    if prepare == "withdrawn":
        consent_on(box, pid)
        withdraw_by(box, pid)
    err = refused(box, Refused, box.randomize, pid)
    assert err.message == f"{pid} {message}" and err.exit_code == 1
    assert box.envelopes("TWH-CM")[0]["participant_id"] is None


def test_randomization_waits_for_the_baseline_diary_and_uses_no_envelope(box: Box) -> None:
    pid = box.screen().id
    consent_on(box, pid)
    err = refused(box, Refused, box.randomize, pid)
    assert err.message.startswith(f"{pid} cannot be randomized yet: the baseline diary")
    box.baseline(pid)
    assert box.randomize(pid).randomization_number == "R0001"


def test_randomizing_twice_gives_the_same_answer_and_uses_no_envelope(box: Box) -> None:
    pid = box.ready()
    first = box.randomize(pid)
    before = state(box)
    again = box.randomize(pid)
    assert again == dataclasses.replace(first, already=True)
    assert state(box) == before  # no envelope, no number, no audit event
    withdraw_by(box, pid)  # withdrawn after randomization: still the same answer
    assert box.randomize(pid.lower()) == dataclasses.replace(first, already=True)


def test_an_exhausted_stratum_refuses_and_assigns_nothing(box: Box) -> None:
    for _ in range(PER_STRATUM):
        box.enrol("SHS", "CDH")
    pid = box.ready("SHS", "CDH")

    err = refused(box, Refused, box.randomize, pid)

    assert err.exit_code == 1
    assert err.message.startswith("stratum SHS-CDH has no sealed envelope left")
    assert err.next_step == NextStep("extend-list", "SHS-CDH")
    with box.tx() as s:
        [v] = [v for v in list_participants(s, box.actor("cora")) if v.id == pid]
    assert (v.status, v.randomization_number, v.label_code) == ("consented", None, None)
    assert pid not in {e.entity_id for e in box.events("participant.randomize")}
    usage = box.usage()["SHS-CDH"]
    assert (usage.sealed, usage.used, usage.left) == (PER_STRATUM, PER_STRATUM, 0)
    # the other strata carry on
    assert box.enrol("SHS", "CM") and box.usage()["SHS-CM"].used == 1


# --- each coordinator keeps to their own sites ---------------------------------------------------


def test_a_coordinator_cannot_screen_at_another_site(box: Box) -> None:
    err = refused(box, PermissionDenied, box.screen, by="tess", site="SHS")
    assert err.message == "tess works at TWH, not at SHS" and err.exit_code == 1


@pytest.mark.parametrize("action", ["consent", "randomize", "withdraw"])
def test_a_coordinator_cannot_touch_another_sites_participant(box: Box, action: str) -> None:
    pid = box.screen(site="SHS").id  # by cora, who works at both sites
    if action != "consent":
        consent_on(box, pid)
        box.baseline(pid)  # ready to be randomized, by cora
    do = {
        "consent": lambda: consent_on(box, pid, by="tess"),
        "randomize": lambda: box.randomize(pid, by="tess"),
        "withdraw": lambda: withdraw_by(box, pid, by="tess"),
    }[action]
    err = refused(box, PermissionDenied, do)
    assert err.message == "tess works at TWH, not at SHS" and err.exit_code == 1


def test_a_coordinator_lists_only_their_own_sites(box: Box) -> None:
    for site in ("TWH", "SHS", "SHS", "TWH"):
        box.screen(site=site)
    everyone = ["SHS-001", "SHS-002", "TWH-001", "TWH-002"]
    assert visible(box, "tess") == ["TWH-001", "TWH-002"]
    assert visible(box, "tess", site="SHS") == []
    assert visible(box, "tess", search="SHS") == []
    assert visible(box, "cora") == everyone
    assert visible(box, ADMIN) == everyone
