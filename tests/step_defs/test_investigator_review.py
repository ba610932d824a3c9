"""Steps for ``features/investigator_review.feature``: the status (enrolment per site, the
enrolment curve, CONSORT 2010's boxes) and the emergency-unblinding report, as a blinded
investigator reads them.

Runs on SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL, on the export tests' trial
(``tests.db.test_export.build_export_world``: TWH-007 a screen failure, TWH-006 consented
only, six randomized on one day, TWH-005 withdrawn before the infusion, four infused, day
37 today, TWH-003 unblinded by ivan), each scenario in a rolled-back window."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.db.test_export import build_export_world
from tests.db.test_pharmacy import ARM_WORDS, Box, World, trial_on_each_backend, window
from trialkit.render.figures import enrolment_plot
from trialkit.services.exports.status import TrialStatus, trial_status
from trialkit.services.pharmacy.unblinding import UnblindingEntry, unblinding_report

scenarios("investigator_review.feature")


@dataclass
class Review:
    box: Box
    investigator: str = "iris"
    status: TrialStatus | None = None
    unblindings: list[UnblindingEntry] | None = None

    @property
    def st(self) -> TrialStatus:
        assert self.status is not None
        return self.status


trial = trial_on_each_backend("inv-bdd", build_export_world)


@pytest.fixture(autouse=True)
def review(trial: World) -> Iterator[Review]:
    """Autouse, so that every scenario is collected once per backend."""
    with window(trial) as box:
        yield Review(box)


@given("the KetHead trial has screened eight people, randomized six and infused four")
def the_trial(review: Review) -> None:
    assert review.box.actor("cora").role.value == "coordinator"


@given(parsers.parse('"{iris}" is an investigator who holds no unblinding key'))
def investigator(review: Review, iris: str) -> None:
    actor = review.box.actor(iris)
    assert actor.role.value == "investigator" and not actor.custodian
    review.investigator = iris


@when("the investigator reads the trial's status")
def read_status(review: Review) -> None:
    with review.box.tx() as s:
        review.status = trial_status(s, review.box.actor(review.investigator),
                                     clock=review.box.clock)


@when("the investigator reads the emergency-unblinding report")
def read_report(review: Review) -> None:
    with review.box.tx() as s:
        review.unblindings = unblinding_report(s, review.box.actor(review.investigator),
                                               clock=review.box.clock)


@then(parsers.parse('the site "{site}" has randomized {n:d} of its target of {target:d}'))
def site_counts(review: Review, site: str, n: int, target: int) -> None:
    [e] = [e for e in review.st.sites if e.code == site]
    assert (e.randomized, e.target) == (n, target)


@then(parsers.parse("the enrolment curve rises in one step to {n:d} on the day of "
                    "randomization"))
def one_step(review: Review, n: int) -> None:
    plot = enrolment_plot(review.st)
    assert plot is not None
    total = plot.lines[-1]
    rises = [(a, b) for a, b in zip(total.ys, total.ys[1:], strict=False) if b != a]
    assert rises == [(0, n)]


@then(parsers.parse("the enrolment curve runs to today with whole-number ticks up to at "
                    "least {top:d}"))
def to_today(review: Review, top: int) -> None:
    plot = enrolment_plot(review.st)
    assert plot is not None
    assert plot.end == review.st.as_of == review.box.clock.now().date()
    assert all(line.xs[-1] == plot.day(plot.end) for line in plot.lines)
    assert all(isinstance(t, int) for t in plot.y_ticks) and plot.y_ticks[-1] >= top


@then(parsers.parse("the CONSORT flow shows {assessed:d} assessed for eligibility and "
                    "{excluded:d} excluded"))
def assessed(review: Review, assessed: int, excluded: int) -> None:
    c = review.st.consort
    assert (c.screened, c.ineligible + c.not_randomized) == (assessed, excluded)


@then(parsers.parse("of the excluded, {ineligible:d} did not meet the eligibility criteria "
                    "and {waiting:d} is not yet randomized"))
def excluded(review: Review, ineligible: int, waiting: int) -> None:
    c = review.st.consort
    assert (c.ineligible, c.awaiting_randomization, c.declined, c.withdrew_after_consent) == (
        ineligible, waiting, 0, 0)


@then(parsers.parse("{randomized:d} were randomized, {infused:d} received the infusion and "
                    "{not_infused:d} did not"))
def allocation(review: Review, randomized: int, infused: int, not_infused: int) -> None:
    c = review.st.consort
    assert (c.randomized, c.infused, c.randomized - c.infused) == (
        randomized, infused, not_infused)


@then(parsers.parse("of those not infused, {withdrew:d} withdrew before it and {waiting:d} "
                    "is still waiting for it"))
def not_infused(review: Review, withdrew: int, waiting: int) -> None:
    c = review.st.consort
    assert (c.not_infused_withdrawn, c.awaiting_infusion) == (withdrew, waiting)


@then(parsers.parse("{analysed:d} are analysed by intention to treat, {missing:d} of them "
                    "without a primary outcome"))
def analysed(review: Review, analysed: int, missing: int) -> None:
    c = review.st.consort
    assert (c.analysed, c.primary_missing) == (analysed, missing)


@then("nothing in the status names a treatment")
def status_blinded(review: Review) -> None:
    shown = json.dumps(asdict(review.st), default=str).replace(review.st.title, "")
    assert ARM_WORDS.findall(shown) == []


@then(parsers.parse('she sees that "{who}" unblinded "{pid}" because "{why}"'))
def unblinded(review: Review, who: str, pid: str, why: str) -> None:
    assert review.unblindings is not None
    assert [(e.user, e.participant_id, e.reason, e.refused) for e in review.unblindings] == [
        (who, pid, why, False)]


@then("nothing in the report names a treatment")
def report_blinded(review: Review) -> None:
    shown = json.dumps([asdict(e) for e in review.unblindings or []], default=str)
    assert ARM_WORDS.findall(shown) == []
