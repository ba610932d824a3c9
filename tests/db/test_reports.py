"""The trial status (``services.exports.status``) and its figure (``figures``), on SQLite and (with
TRIALKIT_TEST_PG_URL) on PostgreSQL, over the world of ``test_export``: eight screened (one
screen failure), six randomized (one withdrawn before the infusion), four infused on day 0,
"today" day 37 after the infusion, with the follow-up diary that module describes."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.db.test_export import FOLLOW_UP_DAYS, build_export_world
from tests.db.test_pharmacy import Box, World, arm_words, window
from trialkit.domain.errors import PermissionDenied
from trialkit.render.figures import status_svg
from trialkit.services.administration.database_lock import lock_database
from trialkit.services.enrolment.participants import withdraw
from trialkit.services.exports.status import (
    Consort,
    CurvePoint,
    Overdue,
    TrialStatus,
    WindowCompleteness,
    trial_status,
)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    with build_export_world(request.param, tmp_path_factory.mktemp("reports")) as w:
        yield w


@pytest.fixture
def box(world: World) -> Iterator[Box]:
    with window(world) as b:
        yield b


def status(box: Box, by: str = "ivan") -> TrialStatus:
    with box.tx() as s:
        return trial_status(s, box.actor(by), clock=box.clock)


def day0(box: Box) -> date:
    return box.clock.now().date() - timedelta(days=FOLLOW_UP_DAYS)


# --- enrolment -------------------------------------------------------------------------------


def test_enrolment_per_site_against_its_target(box: Box) -> None:
    st = status(box)
    assert [(e.code, e.target, e.screened, e.eligible, e.consented, e.randomized, e.withdrawn)
            for e in st.sites] == [("TWH", 28, 7, 6, 6, 5, 1), ("SHS", 28, 1, 1, 1, 1, 0)]
    assert st.sites[0].percent_of_target == pytest.approx(100 * 5 / 28)
    assert st.target == 56


def test_enrolment_per_stratum(box: Box) -> None:
    st = status(box)
    assert [(e.code, e.screened, e.randomized) for e in st.strata] == [
        ("TWH-CM", 7, 5), ("TWH-CDH", 0, 0), ("SHS-CM", 0, 0), ("SHS-CDH", 1, 1)]
    assert st.strata[0].name == "Toronto Western Hospital / Chronic migraine"


def test_only_an_admin_sees_what_is_left_of_each_list(box: Box) -> None:
    assert status(box).envelopes is None
    used = {u.stratum: (u.sealed, u.used, u.left) for u in status(box, "alice").envelopes or ()}
    assert used == {"TWH-CM": (8, 5, 3), "TWH-CDH": (8, 0, 8), "SHS-CM": (8, 0, 8),
                    "SHS-CDH": (8, 1, 7)}


def test_the_enrolment_curve_counts_randomizations_by_day(box: Box) -> None:
    assert status(box).curve == (CurvePoint(day0(box), 6, (("TWH", 5), ("SHS", 1))),)


# --- the diary -------------------------------------------------------------------------------


def test_diary_completeness_per_window(box: Box) -> None:
    assert status(box).completeness == (
        WindowCompleteness("BASELINE", False, 6, 168, 168, 6, 6),
        WindowCompleteness("D1-28", True, 4, 112, 70, 4, 2),
        WindowCompleteness("D29-56", False, 4, 32, 13, 0, 0),
        WindowCompleteness("D57-84", False, 0, 0, 0, 0, 0),
    )
    assert status(box).completeness[1].percent == pytest.approx(62.5)


def test_participants_behind_with_their_diary_are_listed_most_at_risk_first(box: Box) -> None:
    d0 = day0(box)
    assert status(box).overdue == (
        Overdue("SHS-001", "SHS", "D29-56", 8, d0 - timedelta(days=1), True),
        Overdue("TWH-002", "TWH", "D29-56", 8, d0 + timedelta(days=20), True),
        Overdue("TWH-003", "TWH", "D29-56", 3, d0 + timedelta(days=33), False),
    )


def test_a_coordinator_sees_the_overdue_participants_of_their_own_sites(box: Box) -> None:
    assert [o.participant_id for o in status(box, "tess").overdue] == ["TWH-002", "TWH-003"]
    assert [o.participant_id for o in status(box, "cora").overdue] == [
        "SHS-001", "TWH-002", "TWH-003"]


# --- CONSORT ---------------------------------------------------------------------------------


def test_the_consort_flow_counts_every_stage(box: Box) -> None:
    # The world: one consented, never randomized and still in; of six randomized, one
    # withdrew before the infusion, one waits for it, four infused on day 0; day 37 today,
    # so the primary window (D1-28) is over for the four and D57-84 for nobody; two of the
    # four have too few diary days in D1-28 for a primary outcome (lost to follow-up).
    # Analysed by intention to treat: all six randomized, four of them with it missing.
    assert status(box).consort == Consort(
        screened=8, ineligible=1,
        ineligible_by_criterion=(("I1_age", 1), ("E01_pregnancy", 1)),
        eligible=7, consented=7, not_randomized=1, withdrew_before_randomization=0,
        randomized=6, infused=4, completed_primary=4, withdrawn=1, analysed=6,
        primary_window="D1-28", declined=0, withdrew_after_consent=0,
        awaiting_randomization=1, not_infused_withdrawn=1, awaiting_infusion=1,
        discontinued=0, lost_to_follow_up=2, completed_last=0, last_window="D57-84",
        primary_missing=4,
    )


def test_withdrawing_after_the_primary_window_still_counts_as_completed(box: Box) -> None:
    with box.tx() as s:
        withdraw(s, box.actor("cora"), "SHS-001", reason="moved away", clock=box.clock)
    st = status(box)
    assert (st.consort.completed_primary, st.consort.withdrawn) == (4, 2)
    assert "SHS-001" not in [o.participant_id for o in st.overdue]


def test_every_role_may_read_the_status_and_it_never_shows_an_arm(box: Box) -> None:
    for who in ("alice", "cora", "phil", "ivan", "iris", "mona"):
        st = status(box, who)
        assert not arm_words(repr(st)), who
        assert not arm_words(status_svg(st)), who


def test_the_status_shows_the_lock(box: Box) -> None:
    assert status(box).locked_at is None
    with box.tx() as s:
        lock_database(s, box.actor("iris"), clock=box.clock)
    st = status(box)
    assert (st.locked_at, st.locked_by) == (box.clock.now(), "iris")


def test_a_disabled_role_cannot_read_it(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trialkit.services.actor.has_permission", lambda *a: False)
    with pytest.raises(PermissionDenied, match="read trial status"):
        status(box)


# --- the figure ------------------------------------------------------------------------------


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_the_figure_draws_the_enrolment_curve_and_the_consort_flow(box: Box,
                                                                   tmp_path: Path) -> None:
    svg = status_svg(status(box))
    shown = texts(svg)
    for words in ("Enrolment: participants randomized (cumulative)", "target 56",
                  "TWH (5 of 28)", "SHS (1 of 28)", "All sites (6)",
                  # CONSORT 2010's boxes, counted as in test_the_consort_flow_counts_every_stage
                  "Assessed for eligibility (n=8)", "Excluded (n=2)",
                  "not meeting eligibility criteria: 1", "I1_age: 1", "E01_pregnancy: 1",
                  "not yet randomized: 1", "Randomized (n=6)",
                  "Did not receive the allocated infusion (n=2)",
                  "withdrew before the infusion: 1", "infusion not given yet: 1",
                  "Received the allocated infusion (n=4)", "Completed D1-28 (n=4)",
                  "completed D57-84: 0", "Lost to follow-up (n=2)", "Discontinued (n=1)",
                  "Analysed (n=6)", "intention to treat: everyone randomized",
                  "primary outcome (D1-28) missing: 4"):
        assert words in shown, words
    assert "TRAINING - not for clinical use" not in shown
    assert svg.count('fill="none" stroke=') == 3  # the steps of two sites and the total
    (tmp_path / "status.svg").write_text(svg)


def test_a_training_trial_says_so_on_the_figure(box: Box) -> None:
    st = dataclasses.replace(status(box), training=True)
    assert texts(status_svg(st))[0] == "TRAINING - not for clinical use"


def test_a_figure_before_any_randomization_says_so(box: Box) -> None:
    st = dataclasses.replace(status(box), curve=())
    assert "No participant has been randomized yet" in texts(status_svg(st))


def test_text_in_the_figure_is_escaped(box: Box) -> None:
    st = status(box)
    odd = dataclasses.replace(st, trial_code="<K&H>", consort=dataclasses.replace(
        st.consort, ineligible_by_criterion=(("E<1>", 2),)))
    shown = texts(status_svg(odd))
    assert "<K&H>: status on " + str(st.as_of) in shown and "E<1>: 2" in shown
