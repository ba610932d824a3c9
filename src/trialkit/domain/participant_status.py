"""A participant's status: the one rule every view (participants, outcomes, exports, the
TUI) uses to say where a participant is. Blinded: nothing here depends on an arm (every
arm is prepared alike, so "dispensed" says nothing about one)."""

from __future__ import annotations

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


@dataclass(frozen=True)
class Facts:
    """What the records say of a participant, whatever store they come from."""

    eligible: bool
    consented: bool
    randomized: bool
    dispensed: bool
    infused: bool
    withdrawn: bool


def status_of(f: Facts) -> Status:
    """The one status of a participant: withdrawal first, then the furthest step reached."""
    if f.withdrawn:
        return Status.WITHDRAWN
    if f.infused:
        return Status.INFUSED
    if f.randomized:
        return Status.DISPENSED if f.dispensed else Status.RANDOMIZED
    if f.consented:
        return Status.CONSENTED
    return Status.ELIGIBLE if f.eligible else Status.INELIGIBLE
