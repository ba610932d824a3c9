"""A participant's status: the one rule every view (participants, outcomes, the status
report and its CONSORT flow, exports, the TUI) uses to say where a participant is, and the
one rule every step (consent, randomize, dispense, infuse, the diary, withdraw) uses to say
whether it may be taken now. Blinded: nothing here depends on an arm (every arm is prepared
alike, so "dispensed" says nothing about one).

The steps a participant goes through, in order::

    ineligible                                   (a screen failure: no step follows)
    eligible -> consented -> randomized -> dispensed -> infused
       \\___________\\____________\\_____________\\___________\\__-> withdrawn (at any of them)

A dispensed participant whose preparation expired may be dispensed again (re-prepared);
nothing else goes back, and nothing follows withdrawal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Where a participant is, in the order they go through it (withdrawn: at any point)."""

    INELIGIBLE = "ineligible"
    ELIGIBLE = "eligible"
    CONSENTED = "consented"
    RANDOMIZED = "randomized"
    DISPENSED = "dispensed"  # the pharmacy has recorded the preparation
    INFUSED = "infused"
    WITHDRAWN = "withdrawn"


# The steps in the order they are reached (a screen failure reaches none of the others).
STEPS: tuple[Status, ...] = (Status.ELIGIBLE, Status.CONSENTED, Status.RANDOMIZED,
                             Status.DISPENSED, Status.INFUSED)

# Which status may follow which. Withdrawal may follow every step a person in the trial
# reaches; a screen failure never entered it, so there is nothing to withdraw from.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.INELIGIBLE: frozenset(),
    Status.ELIGIBLE: frozenset({Status.CONSENTED, Status.WITHDRAWN}),
    Status.CONSENTED: frozenset({Status.RANDOMIZED, Status.WITHDRAWN}),
    Status.RANDOMIZED: frozenset({Status.DISPENSED, Status.WITHDRAWN}),
    Status.DISPENSED: frozenset({Status.DISPENSED, Status.INFUSED, Status.WITHDRAWN}),
    Status.INFUSED: frozenset({Status.WITHDRAWN}),
    Status.WITHDRAWN: frozenset(),
}


@dataclass(frozen=True)
class Facts:
    """What the records say of a participant, whatever store they come from."""

    eligible: bool
    consented: bool
    randomized: bool
    dispensed: bool
    infused: bool
    withdrawn: bool


def reached(f: Facts) -> Status:
    """The furthest step the participant reached, withdrawn or not (a screen failure:
    ``INELIGIBLE``)."""
    if not f.eligible:
        return Status.INELIGIBLE
    if f.infused:
        return Status.INFUSED
    if f.randomized:
        return Status.DISPENSED if f.dispensed else Status.RANDOMIZED
    return Status.CONSENTED if f.consented else Status.ELIGIBLE


def status_of(f: Facts) -> Status:
    """The one status of a participant: withdrawal first, then the furthest step reached."""
    return Status.WITHDRAWN if f.withdrawn else reached(f)


def has_reached(f: Facts, step: Status) -> bool:
    """Whether the participant got as far as ``step`` (one of :data:`STEPS`), withdrawn
    since or not."""
    furthest = reached(f)
    return furthest in STEPS and STEPS.index(furthest) >= STEPS.index(step)


def may_become(now: Status, then: Status) -> bool:
    """Whether ``then`` may follow ``now`` (:data:`TRANSITIONS`)."""
    return then in TRANSITIONS[now]


# --- what may be done now (the services refuse, and the TUI greys out, by these) ---------------


def can_consent(s: Status) -> bool:
    """Consent is recorded once, for an eligible participant still in the trial."""
    return may_become(s, Status.CONSENTED)


def can_randomize(s: Status) -> bool:
    """Randomize after consent (asking again for a randomized participant is no new step:
    the service answers with the randomization made)."""
    return may_become(s, Status.RANDOMIZED)


def is_randomized(s: Status) -> bool:
    """Randomized and still in the trial (dispensed and infused included)."""
    return s in (Status.RANDOMIZED, Status.DISPENSED, Status.INFUSED)


def can_dispense(s: Status) -> bool:
    """The pharmacy prepares the infusion of a randomized participant once."""
    return s is Status.RANDOMIZED


def can_reprepare(s: Status) -> bool:
    """A dispensed participant, not yet infused, may be prepared again (the service checks
    that the preparation expired)."""
    return s is Status.DISPENSED and may_become(s, Status.DISPENSED)


def can_infuse(s: Status) -> bool:
    """The infusion follows the pharmacy's preparation."""
    return may_become(s, Status.INFUSED)


def can_plan_infusion(s: Status) -> bool:
    """The planned infusion day is set (or moved) between randomization and infusion."""
    return s in (Status.RANDOMIZED, Status.DISPENSED)


def keeps_diary(f: Facts) -> bool:
    """The diary runs from consent: whoever consented keeps one, withdrawn or not (a
    withdrawn participant's days are those up to the withdrawal; the diary service checks
    the dates). A screen failure, or someone who never consented, keeps none."""
    return has_reached(f, Status.CONSENTED)


def can_withdraw(s: Status) -> bool:
    """Anyone who entered the trial and has not withdrawn yet."""
    return may_become(s, Status.WITHDRAWN)


# --- counting (every count of participants by status comes from here) --------------------------


@dataclass(frozen=True)
class Flow:
    """How many participants reached each step, and how many withdrew, split by whether
    they withdrew before randomization or after it."""

    screened: int = 0
    ineligible: int = 0
    eligible: int = 0
    consented: int = 0
    randomized: int = 0
    dispensed: int = 0
    infused: int = 0
    withdrew_before_randomization: int = 0
    withdrew_after_randomization: int = 0
    # CONSORT 2010's boxes, each a part of one of the counts above.
    declined: int = 0  # eligible, withdrew before consenting (declined, no consent)
    withdrew_after_consent: int = 0  # consented, withdrew before randomization
    awaiting_randomization: int = 0  # eligible, not randomized, still in the trial
    not_infused_withdrawn: int = 0  # randomized, withdrew before the infusion
    awaiting_infusion: int = 0  # randomized, not infused (yet), still in the trial
    withdrew_after_infusion: int = 0  # infused, then withdrew (discontinued)

    @property
    def withdrawn(self) -> int:
        """Everyone whose status is withdrawn, whenever they withdrew."""
        return self.withdrew_before_randomization + self.withdrew_after_randomization

    @property
    def not_randomized(self) -> int:
        """Eligible, never randomized (withdrawn or not yet randomized)."""
        return self.eligible - self.randomized


def _consort_box(f: Facts) -> str:
    """The one CONSORT box (beyond the steps reached) an eligible participant ends in."""
    infused = has_reached(f, Status.INFUSED)
    if has_reached(f, Status.RANDOMIZED):
        if infused:
            return "withdrew_after_infusion" if f.withdrawn else ""
        return "not_infused_withdrawn" if f.withdrawn else "awaiting_infusion"
    if not f.withdrawn:
        return "awaiting_randomization"
    return "withdrew_after_consent" if has_reached(f, Status.CONSENTED) else "declined"


def flow(groups: Iterable[tuple[Facts, int]]) -> Flow:
    """The flow of ``groups`` (each: facts shared by ``n`` participants)."""
    counts = dict.fromkeys(Flow.__dataclass_fields__, 0)
    for f, n in groups:
        counts["screened"] += n
        if status_of(f) is Status.WITHDRAWN:
            after = has_reached(f, Status.RANDOMIZED)
            counts["withdrew_after_randomization" if after
                   else "withdrew_before_randomization"] += n
        if not f.eligible:
            counts["ineligible"] += n
            continue
        for step in STEPS:
            if has_reached(f, step):
                counts[step.value] += n
        box = _consort_box(f)
        if box:
            counts[box] += n
    return Flow(**counts)
