"""A participant's one status, from the facts the records hold: written out by hand for
every combination a participant can reach (each step needs the ones before it), withdrawn
at each of them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialkit.domain import participant_status as ps
from trialkit.domain.participant_status import Facts, Status, status_of

# (eligible, consented, randomized, dispensed, infused) -> the status, as the trial says it
STAGES = [
    ((False, False, False, False, False), "ineligible"),
    ((True, False, False, False, False), "eligible"),
    ((True, True, False, False, False), "consented"),
    ((True, True, True, False, False), "randomized"),
    ((True, True, True, True, False), "dispensed"),
    ((True, True, True, True, True), "infused"),
]


@pytest.mark.parametrize(("facts", "word"), STAGES)
def test_each_stage_has_its_one_word(facts: tuple[bool, ...], word: str) -> None:
    assert status_of(Facts(*facts, withdrawn=False)) == word
    assert status_of(Facts(*facts, withdrawn=False)).value == word


@pytest.mark.parametrize(("facts", "_word"), STAGES)
def test_withdrawn_at_any_stage_is_withdrawn(facts: tuple[bool, ...], _word: str) -> None:
    assert status_of(Facts(*facts, withdrawn=True)) is Status.WITHDRAWN


# --- what may be done at each status (issue 9 item 13, issue 10 "one source for each rule") ---
# Written from the protocol's order of steps: consent once for an eligible person, randomize
# after consent, the pharmacy prepares once (again only when the preparation expired, before
# the infusion), the infusion follows the preparation, the planned infusion day moves until
# the infusion, withdrawal from any point inside the trial, nothing after withdrawal, and a
# screen failure takes no step at all.

ALLOWED = {
    "ineligible": set(),
    "eligible": {"consent", "withdraw"},
    "consented": {"randomize", "withdraw"},
    "randomized": {"dispense", "plan infusion", "withdraw"},
    "dispensed": {"prepare again", "infuse", "plan infusion", "withdraw"},
    "infused": {"withdraw"},
    "withdrawn": set(),
}
PREDICATES = {
    "consent": ps.can_consent,
    "randomize": ps.can_randomize,
    "dispense": ps.can_dispense,
    "prepare again": ps.can_reprepare,
    "infuse": ps.can_infuse,
    "plan infusion": ps.can_plan_infusion,
    "withdraw": ps.can_withdraw,
}
# The status each step leads to.
LEADS_TO = {"consent": "consented", "randomize": "randomized", "dispense": "dispensed",
            "prepare again": "dispensed", "infuse": "infused", "withdraw": "withdrawn"}


@pytest.mark.parametrize("word", list(ALLOWED))
def test_each_status_allows_exactly_its_steps(word: str) -> None:
    status = Status(word)
    assert {step for step, can in PREDICATES.items() if can(status)} == ALLOWED[word]


def test_every_status_is_covered() -> None:
    assert {s.value for s in Status} == set(ALLOWED)


@pytest.mark.parametrize("word", list(ALLOWED))
def test_the_transitions_are_the_steps_allowed(word: str) -> None:
    expected = {LEADS_TO[step] for step in ALLOWED[word] if step in LEADS_TO}
    assert {s.value for s in ps.TRANSITIONS[Status(word)]} == expected


def _facts_after(eligible: bool, steps: list[str]) -> Facts:
    """The records after the steps that were allowed, written without the module."""
    done = set(steps)
    return Facts(eligible, "consent" in done, "randomize" in done,
                 bool(done & {"dispense", "prepare again"}), "infuse" in done,
                 "withdraw" in done)


@settings(max_examples=300, deadline=None)
@given(eligible=st.booleans(),
       tries=st.lists(st.sampled_from(sorted(PREDICATES)), max_size=12))
def test_any_sequence_of_steps_ends_where_the_allowed_steps_lead(
        eligible: bool, tries: list[str]) -> None:
    # An independent walk: the current word, moved only by the steps ALLOWED says.
    word, taken = ("eligible" if eligible else "ineligible"), []
    for step in tries:
        assert PREDICATES[step](Status(word)) == (step in ALLOWED[word])
        if step in ALLOWED[word] and step in LEADS_TO:
            word = LEADS_TO[step]
            taken.append(step)
    f = _facts_after(eligible, taken)
    assert status_of(f).value == word
    # Withdrawn or not, the furthest step reached is the last one taken before withdrawal.
    before = [s for s in taken if s != "withdraw"]
    furthest = LEADS_TO[before[-1]] if before else ("eligible" if eligible else "ineligible")
    assert ps.reached(f).value == furthest


def test_the_diary_is_kept_from_consent_withdrawn_or_not() -> None:
    assert not ps.keeps_diary(Facts(False, False, False, False, False, False))
    assert not ps.keeps_diary(Facts(True, False, False, False, False, False))
    assert not ps.keeps_diary(Facts(True, False, False, False, False, True))
    for withdrawn in (False, True):
        assert ps.keeps_diary(Facts(True, True, False, False, False, withdrawn))
        assert ps.keeps_diary(Facts(True, True, True, True, True, withdrawn))


# --- counting: the flow every count of participants comes from --------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.sampled_from(sorted(PREDICATES)),
                                                   max_size=8), st.integers(1, 5)),
                max_size=12))
def test_the_flow_counts_what_each_group_reached(
        groups: list[tuple[bool, list[str], int]]) -> None:
    expected = dict.fromkeys(("screened", "ineligible", "eligible", "consented", "randomized",
                              "dispensed", "infused", "before", "after"), 0)
    rows = []
    for eligible, tries, n in groups:
        word, taken = ("eligible" if eligible else "ineligible"), []
        for step in tries:
            if step in ALLOWED[word] and step in LEADS_TO:
                word, taken = LEADS_TO[step], [*taken, step]
        rows.append((_facts_after(eligible, taken), n))
        expected["screened"] += n
        if not eligible:
            expected["ineligible"] += n
            continue
        expected["eligible"] += n
        for step, key in (("consent", "consented"), ("randomize", "randomized"),
                          ("infuse", "infused")):
            expected[key] += n * (step in taken)
        expected["dispensed"] += n * bool({"dispense", "prepare again"} & set(taken))
        if "withdraw" in taken:
            expected["after" if "randomize" in taken else "before"] += n
    f = ps.flow(rows)
    assert (f.screened, f.ineligible, f.eligible, f.consented, f.randomized, f.dispensed,
            f.infused, f.withdrew_before_randomization, f.withdrew_after_randomization) == (
        expected["screened"], expected["ineligible"], expected["eligible"],
        expected["consented"], expected["randomized"], expected["dispensed"],
        expected["infused"], expected["before"], expected["after"])
    assert f.withdrawn == expected["before"] + expected["after"]
    assert f.not_randomized == expected["eligible"] - expected["randomized"]
    # Everyone whose status is withdrawn, and no one else, is counted as withdrawn.
    assert f.withdrawn == sum(n for facts, n in rows if status_of(facts) is Status.WITHDRAWN)


# CONSORT 2010's boxes, from the steps each person took (written from the diagram's words):
# excluded = not eligible + declined (no consent) + withdrew after consent + not yet randomized;
# randomized = received the infusion + did not (withdrew before it, or still waiting);
# discontinued = withdrew after the infusion.
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.sampled_from(sorted(PREDICATES)),
                                                   max_size=8), st.integers(1, 5)),
                max_size=12))
def test_every_eligible_person_ends_in_one_consort_box(
        groups: list[tuple[bool, list[str], int]]) -> None:
    boxes = dict.fromkeys(("declined", "after consent", "awaiting randomization",
                           "not infused withdrawn", "awaiting infusion", "discontinued",
                           "infused in trial"), 0)
    rows = []
    for eligible, tries, n in groups:
        word, taken = ("eligible" if eligible else "ineligible"), []
        for step in tries:
            if step in ALLOWED[word] and step in LEADS_TO:
                word, taken = LEADS_TO[step], [*taken, step]
        rows.append((_facts_after(eligible, taken), n))
        if not eligible:
            continue
        left = "withdraw" in taken
        if "infuse" in taken:
            boxes["discontinued" if left else "infused in trial"] += n
        elif "randomize" in taken:
            boxes["not infused withdrawn" if left else "awaiting infusion"] += n
        elif not left:
            boxes["awaiting randomization"] += n
        else:
            boxes["after consent" if "consent" in taken else "declined"] += n
    f = ps.flow(rows)
    assert (f.declined, f.withdrew_after_consent, f.awaiting_randomization,
            f.not_infused_withdrawn, f.awaiting_infusion, f.withdrew_after_infusion) == (
        boxes["declined"], boxes["after consent"], boxes["awaiting randomization"],
        boxes["not infused withdrawn"], boxes["awaiting infusion"], boxes["discontinued"])
    # The boxes add up to the counts they split.
    assert f.declined + f.withdrew_after_consent == f.withdrew_before_randomization
    assert f.not_randomized == (f.declined + f.withdrew_after_consent
                                + f.awaiting_randomization)
    assert f.randomized - f.infused == f.not_infused_withdrawn + f.awaiting_infusion
    assert f.withdrew_after_randomization == f.not_infused_withdrawn + f.withdrew_after_infusion
