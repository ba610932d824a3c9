"""Steps for ``features/monitor_review.feature``: a monitor reads a participant's whole
history, what each event changed, sign-ins on request, and verifies the trail; blinded.

Runs on SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL, on the pharmacy tests' trial
(TWH-001 randomized; TWH-005 withdrawn "moved away"), each scenario in a rolled-back
window."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.db.test_pharmacy import ARM_WORDS, Box, World, trial_on_each_backend, window
from trialkit.domain.errors import PermissionDenied, TrialkitError
from trialkit.services.integrity.audit_review import AuditFilter, ReviewedEvent, audit_events
from trialkit.services.integrity.verification import VerifyReport, verify

scenarios("monitor_review.feature")

# The steps of the feature as the audit trail names them.
STEPS = {"screening": "participant.screen", "consent": "participant.consent",
         "baseline diary": "diary.import", "randomization": "participant.randomize",
         "envelope opening": "envelope.open", "preparation": "preparation.record",
         "labels printed again": "label.reprint"}


@dataclass
class Review:
    box: Box
    monitor: str = "mona"
    lots: list[str] = field(default_factory=list)
    seen: list[ReviewedEvent] = field(default_factory=list)
    report: VerifyReport | None = None
    refusal: TrialkitError | None = None

    def read(self, who: str | None = None, **filters: object) -> list[ReviewedEvent]:
        with self.box.tx() as s:
            return list(audit_events(s, self.box.actor(who or self.monitor),
                                     AuditFilter(**filters)))  # type: ignore[arg-type]


trial = trial_on_each_backend("review-bdd")


@pytest.fixture(autouse=True)
def review(trial: World) -> Iterator[Review]:
    """Autouse, so that every scenario is collected once per backend."""
    with window(trial) as box:
        yield Review(box)


@given(parsers.parse('the KetHead trial is running with the monitor "{mona}"'))
def running(review: Review, mona: str) -> None:
    assert review.box.actor(mona).role.value == "monitor"
    review.monitor = mona


@given(parsers.parse('the pharmacy has prepared the infusion of "{pid}" from the lots '
                     '"{bolus}" and "{infusion}"'))
def prepared(review: Review, pid: str, bolus: str, infusion: str) -> None:
    review.box.dispense(pid, by="phil", lots={"bolus": bolus, "infusion": infusion},
                        checked_by="pia", print_labels=True)
    review.lots = [bolus, infusion]


@given(parsers.parse('the pharmacist "{pia}" has printed the labels of "{pid}" again'))
def reprinted(review: Review, pia: str, pid: str) -> None:
    review.box.labels(pid, by=pia)


@when(parsers.parse('the monitor reads the history of "{pid}"'))
def history(review: Review, pid: str) -> None:
    review.seen = review.read(participant=pid)


@when(parsers.parse('the monitor reads the withdrawal of "{pid}"'))
def withdrawal(review: Review, pid: str) -> None:
    review.seen = review.read(participant=pid, action="participant.withdraw")


@when("the monitor reads the audit trail")
def whole(review: Review) -> None:
    review.seen = review.read()


@when("the monitor asks to see sign-ins too")
def with_sign_ins(review: Review) -> None:
    review.seen = review.read(sign_ins=True)


@when("the monitor verifies the audit trail")
def verifies(review: Review) -> None:
    with review.box.tx() as s:
        review.report = verify(s)


@when(parsers.parse('the coordinator "{cora}" tries to read the audit trail'))
def coordinator_reads(review: Review, cora: str) -> None:
    with pytest.raises(PermissionDenied) as refused:
        review.read(cora)
    review.refusal = refused.value


@then(parsers.parse("she sees, in order: {steps}"))
def in_order(review: Review, steps: str) -> None:
    assert [e.action for e in review.seen] == [STEPS[s.strip()] for s in steps.split(",")]


@then("every step names who did it and when")
def who_and_when(review: Review) -> None:
    people = [e.user for e in review.seen]
    assert people == ["cora"] * 4 + ["phil", "phil", "pia"]
    assert all(e.at.tzinfo is not None for e in review.seen)


@then("nothing she sees names a treatment or a lot")
def blinded(review: Review) -> None:
    shown = json.dumps([[e.action, e.reason, e.before, e.after] for e in review.seen])
    [title] = [e.after["title"] for e in review.read(action="trial.create")]
    assert ARM_WORDS.findall(shown.replace(title, "")) == []
    assert [lot for lot in review.lots if lot in shown] == []


@then(parsers.parse('she sees that "{name}" went from false to true'))
def false_to_true(review: Review, name: str) -> None:
    [event] = review.seen
    assert [(c.before, c.after) for c in event.changes if c.field == name] == [(False, True)]


@then(parsers.parse('she sees that "{name}" went from nothing to "{value}"'))
def nothing_to(review: Review, name: str, value: str) -> None:
    [event] = review.seen
    assert [(c.before, c.after) for c in event.changes if c.field == name] == [(None, value)]


@then("she sees no other field")
def no_other(review: Review) -> None:
    [event] = review.seen
    assert {c.field for c in event.changes} == {"withdrawn", "withdrawal_reason"}


@then("she sees no sign-in")
def no_sign_in(review: Review) -> None:
    assert review.seen and not [e for e in review.seen if e.action.startswith("login")]


@then(parsers.parse('she sees the sign-ins of "{name}"'))
def sign_ins_of(review: Review, name: str) -> None:
    assert [e for e in review.seen if e.action == "login" and e.user == name]


@then("it is reported intact, with the number of events it holds")
def intact(review: Review) -> None:
    assert review.report is not None and review.report.ok, review.report
    assert review.report.events == len(review.read(sign_ins=True))


@then("she is refused because she may not read the audit log")
def refused(review: Review) -> None:
    assert review.refusal is not None and "read the audit log" in review.refusal.message
