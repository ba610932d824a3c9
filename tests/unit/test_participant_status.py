"""A participant's one status, from the facts the records hold: written out by hand for
every combination a participant can reach (each step needs the ones before it), withdrawn
at each of them."""

from __future__ import annotations

import pytest

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
