"""One status in every view (issue 9 item 13): participants built at every stage, withdrawn
at various stages, on SQLite and PostgreSQL; every view (the participants list and its
status filter, a participant's outcomes, the outcomes export's records, the status report's
site and stratum tables, its CONSORT flow, the command line's status text and the TUI
dashboard's CONSORT lines) must say what an independent walk through the protocol's steps
says. The services must also refuse exactly the steps that walk says are not allowed."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import PROTOCOL
from tests.conftest import BACKENDS, PASSWORD, enrol
from tests.db.test_allocation import Box, World, build_world, window
from trialkit.cli.report_cmds import status_text
from trialkit.domain.errors import Refused
from trialkit.domain.roles import Role
from trialkit.services.administration.sign_in import login
from trialkit.services.diary.entries import infuse
from trialkit.services.diary.outcomes import outcomes
from trialkit.services.enrolment.participants import list_participants, withdraw
from trialkit.services.exports.datasets import stream_outcomes
from trialkit.services.exports.status import trial_status
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.store.db import transaction
from trialkit.tui.screens.dashboard import consort_text

# The walk, from the protocol's words: consent once for an eligible person, randomize after
# consent, the pharmacy prepares once for a randomized participant, the infusion follows the
# preparation, withdrawal from any point inside the trial (a screen failure never entered
# it), nothing after withdrawal.
ALLOWED = {
    "ineligible": {},
    "eligible": {"consent": "consented", "withdraw": "withdrawn"},
    "consented": {"randomize": "randomized", "withdraw": "withdrawn"},
    "randomized": {"dispense": "dispensed", "withdraw": "withdrawn"},
    "dispensed": {"infuse": "infused", "withdraw": "withdrawn"},
    "infused": {"withdraw": "withdrawn"},
    "withdrawn": {},
}
STEPS = ("consent", "randomize", "dispense", "infuse", "withdraw")


@dataclass
class Person:
    """The walk's record of one participant."""

    site: str
    eligible: bool
    word: str
    taken: list[str] = field(default_factory=list)


@pytest.fixture(scope="module", params=BACKENDS)
def trial(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with build_world(request.param, tmp_path_factory.mktemp("views"), per_stratum=12) as w:
        with transaction(w.engine) as s:  # a second pharmacist checks each preparation
            enrol(s, w.actors["alice"], _Fixed(w.at), "pia", Role.PHARMACIST,
                  password=PASSWORD)
            enrol(s, w.actors["alice"], _Fixed(w.at), "ivan", Role.INVESTIGATOR,
                  password=PASSWORD)
        with transaction(w.engine) as s:
            w.actors["ivan"] = login(s, "ivan", PASSWORD, clock=_Fixed(w.at))
        yield w


class _Fixed:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def _do(box: Box, step: str, pid: str) -> None:
    actions: dict[str, Callable[[], object]] = {
        "consent": lambda: box.consent(pid),
        "randomize": lambda: box.randomize(pid),
        "dispense": lambda: _dispense(box, pid),
        "infuse": lambda: _infuse(box, pid),
        "withdraw": lambda: _withdraw(box, pid),
    }
    actions[step]()


def _dispense(box: Box, pid: str) -> None:
    with box.tx() as s:
        dispense(s, box.actor("phil"), pid, password=PASSWORD, clock=box.clock,
                 lots={p.id: "LOT-1" for p in PROTOCOL.dosing.preparations}, checked_by="pia",
                 checker_password=PASSWORD)


def _infuse(box: Box, pid: str) -> None:
    with box.tx() as s:
        infuse(s, box.actor("cora"), pid, on=box.clock.now().date(), clock=box.clock)


def _withdraw(box: Box, pid: str) -> None:
    with box.tx() as s:
        withdraw(s, box.actor("cora"), pid, reason="moved away", clock=box.clock)


def walk(box: Box, site: str, eligible: bool, tries: list[str]) -> tuple[str, Person]:
    """Screen someone, then try each step: the services must take exactly the steps the
    walk allows and refuse the others."""
    pid = box.screen(site=site, **({} if eligible else {"age": 17})).id
    person = Person(site, eligible, "eligible" if eligible else "ineligible")
    for step in tries:
        if step in ALLOWED[person.word]:
            if step == "randomize":
                box.baseline(pid)  # randomization waits for the baseline diary
            _do(box, step, pid)
            person.word = ALLOWED[person.word][step]
            person.taken.append(step)
        elif not (step == "randomize" and "randomize" in person.taken):  # asking again
            with pytest.raises(Refused):                                # answers, not refuses
                _do(box, step, pid)
    return pid, person


def eligible_mostly(draw: st.DrawFn) -> bool:
    return draw(st.integers(0, 4)) > 0


@st.composite
def trials(draw: st.DrawFn) -> list[tuple[str, bool, list[str]]]:
    """People at either site, most of them eligible, each trying a sequence of steps that
    leans towards going further (so every stage, and withdrawal at each, comes up)."""
    n = draw(st.integers(1, 5))
    out = []
    for _ in range(n):
        site = draw(st.sampled_from(["TWH", "SHS"]))
        eligible = eligible_mostly(draw)
        stop = draw(st.integers(0, 4))  # how far along the order of steps to go
        tries = list(STEPS[:stop])
        if draw(st.booleans()):
            tries.append("withdraw")
        tries += draw(st.lists(st.sampled_from(STEPS), max_size=2))  # then anything
        out.append((site, eligible, tries))
    return out


def _expected_counts(people: list[Person]) -> dict[str, Counter[str]]:
    """What each count must be, per site and in all, from the walk alone."""
    counts: dict[str, Counter[str]] = {}
    for p in people:
        for key in (p.site, "all"):
            c = counts.setdefault(key, Counter())
            c["screened"] += 1
            c["eligible"] += p.eligible
            c["ineligible"] += not p.eligible
            for step, name in (("consent", "consented"), ("randomize", "randomized"),
                               ("dispense", "dispensed"), ("infuse", "infused")):
                c[name] += step in p.taken
            if "withdraw" in p.taken:
                c["withdrawn"] += 1
                c["after" if "randomize" in p.taken else "before"] += 1
    return counts


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(plan=trials())
def test_every_view_says_the_same_status_as_the_protocol_walk(
        trial: World, plan: list[tuple[str, bool, list[str]]]) -> None:
    with window(trial) as box:
        walked = dict(walk(box, site, eligible, tries) for site, eligible, tries in plan)
        check_views(box, walked)


def check_views(box: Box, walked: dict[str, Person]) -> None:
    words = {pid: p.word for pid, p in walked.items()}
    expected = _expected_counts(list(walked.values()))
    with box.tx() as s:
        # the participants list (CLI `participants`, the TUI's list), and its filter
        listed = {v.id: v.status.value for v in list_participants(s, box.actor("alice"))}
        assert listed == words
        for word in set(words.values()):
            filtered = list_participants(s, box.actor("alice"), status=word)
            assert {v.id for v in filtered} == {pid for pid, w in words.items() if w == word}
        # a participant's outcomes (CLI `outcomes`)
        for pid, p in walked.items():
            if p.eligible:
                assert outcomes(s, box.actor("cora"), pid, clock=box.clock).status == p.word
        # the outcomes export's records
        exported = {r.participant.id: r.status.value
                    for batch in stream_outcomes(s, now=box.clock.now()) for r in batch}
        assert exported == {pid: p.word for pid, p in walked.items()
                            if "randomize" in p.taken}
        st_ = trial_status(s, box.actor("ivan"), clock=box.clock)

    # the status report's tables
    for e in st_.sites:
        c = expected.get(e.code, Counter())
        assert (e.screened, e.eligible, e.consented, e.randomized, e.withdrawn) == (
            c["screened"], c["eligible"], c["consented"], c["randomized"], c["withdrawn"]), e
    strata: Counter[str] = Counter()
    for e in st_.strata:
        strata["screened"] += e.screened
        strata["withdrawn"] += e.withdrawn
    everyone = expected["all"]
    assert (strata["screened"], strata["withdrawn"]) == (everyone["screened"],
                                                          everyone["withdrawn"])
    # the CONSORT flow
    c = st_.consort
    assert (c.screened, c.ineligible, c.eligible, c.consented, c.randomized, c.infused,
            c.withdrew_before_randomization, c.withdrawn, c.not_randomized) == (
        everyone["screened"], everyone["ineligible"], everyone["eligible"],
        everyone["consented"], everyone["randomized"], everyone["infused"],
        everyone["before"], everyone["after"], everyone["eligible"] - everyone["randomized"])
    # the command line's text: the "all" row of the site table and the CONSORT lines
    text = status_text(st_)
    all_row = next(line.split() for line in text.splitlines() if line.strip().startswith("all "))
    assert [int(v) for v in all_row[1:6]] == [everyone[k] for k in (
        "screened", "eligible", "consented", "randomized", "withdrawn")]
    declined = re.search(r"declined \(no consent\)\s+(\d+)", text)
    after_consent = re.search(r"withdrew after consent\s+(\d+)", text)
    after = re.search(r"Discontinued \(withdrew\)\s+(\d+)", text)
    assert declined and after_consent and after
    assert int(declined[1]) + int(after_consent[1]) == everyone["before"]
    assert int(after[1]) == everyone["after"]
    assert int(declined[1]) + int(after_consent[1]) + int(after[1]) == everyone["withdrawn"]
    # the TUI dashboard's CONSORT lines
    tui = re.search(r"Withdrawn \(all\)\s+(\d+)", consort_text(c))
    assert tui and int(tui[1]) == everyone["withdrawn"] == sum(
        w == "withdrawn" for w in words.values())


def test_a_withdrawal_at_each_stage_is_counted_the_same_everywhere(trial: World) -> None:
    """Not left to chance: one participant withdrawn at every stage, and one still at each."""
    with window(trial) as box:
        walked: dict[str, Person] = {}
        for stop in range(len(STEPS)):
            for withdrawn in (False, True):
                tries = list(STEPS[:stop]) + (["withdraw"] if withdrawn else [])
                pid, person = walk(box, "TWH" if stop % 2 else "SHS", True, tries)
                walked[pid] = person
        pid, person = walk(box, "TWH", False, ["withdraw", "consent"])
        walked[pid] = person
        assert sorted(Counter(p.word for p in walked.values()).items()) == [
            ("consented", 1), ("dispensed", 1), ("eligible", 1), ("ineligible", 1),
            ("infused", 1), ("randomized", 1), ("withdrawn", 5)]
        check_views(box, walked)
