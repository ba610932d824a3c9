"""Words about one participant and the rules for which enrolment step fits them now:
blinded (nothing here depends on an arm)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trialkit.domain.participant_status import (
    Status,
    can_consent,
    can_infuse,
    can_plan_infusion,
    can_randomize,
    can_withdraw,
    is_randomized,
)
from trialkit.tui.commands import (
    RANDOMIZE,
    RECORD_CONSENT,
    RECORD_INFUSION,
    SCHEDULE_INFUSION,
    WITHDRAW,
)

if TYPE_CHECKING:
    from trialkit.services.enrolment.participants import ParticipantView


def describe_participant(p: ParticipantView) -> str:
    """One line about the selected participant (blinded: no arm, nothing arm-dependent)."""
    parts = [f"{p.id} · {p.status.value}", f"{p.age} y, {p.sex}, {p.weight_kg:g} kg"]
    if p.failed:
        parts.append(f"failed {', '.join(p.failed)}")
    if p.consent_date:
        parts.append(f"consented {p.consent_date}")
    if p.randomization_number:
        parts.append(f"{p.randomization_number}, label {p.label_code}")
    if p.unblinded_emergency:
        parts.append("EMERGENCY-UNBLINDED")
    return " · ".join(parts)


def _may_randomize(s: Status) -> bool:
    # Asking again for a randomized participant shows their number and uses no envelope.
    return can_randomize(s) or is_randomized(s)


# Which enrolment step each rule of ``domain.participant_status`` allows (the services
# refuse by the same rules; here they grey a step out before it is tried).
ALLOWED: dict[str, Callable[[Status], bool]] = {
    RECORD_CONSENT.action: can_consent,
    RANDOMIZE.action: _may_randomize,
    WITHDRAW.action: can_withdraw,
    SCHEDULE_INFUSION.action: can_plan_infusion,
    RECORD_INFUSION.action: can_infuse,
}


def refusal(action: str, p: ParticipantView) -> str | None:
    """Why this step cannot be taken for this participant now, or None if it can."""
    rule = ALLOWED.get(action)
    if rule is None or rule(p.status):
        return None
    if p.status is Status.WITHDRAWN:
        return f"{p.id} has withdrawn."
    if action == RECORD_CONSENT.action:
        reason = ("is not eligible" if p.status is Status.INELIGIBLE
                  else f"is already {p.status.value}")
        return f"{p.id} {reason}: consent is recorded once, for an eligible participant."
    if action == RANDOMIZE.action:
        return f"{p.id} is {p.status.value}: randomize after consent."
    if action == SCHEDULE_INFUSION.action:
        return (f"{p.id} is {p.status.value}: the infusion day is planned after "
                "randomization and before the infusion.")
    if action == RECORD_INFUSION.action:
        if p.status is Status.INFUSED:
            return f"{p.id} is already infused: the infusion is recorded once."
        return (f"{p.id} is {p.status.value}: the infusion is recorded once the pharmacy "
                "has prepared it (dispensed).")
    return f"{p.id} is a screen failure: there is no participation to withdraw."
